import pytest

from tests.factories import UserFactory, WorkspaceFactory


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()
