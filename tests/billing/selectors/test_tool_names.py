"""Tools' names come from the catalog snapshot, built once per snapshot, and retired tools from the database."""

import pytest

from billing.catalog_cache import catalog_invalidate
from billing.models import Action
from billing.selectors import tool_names
from billing.services.catalog import action_update
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_names_are_built_once_per_catalog_snapshot_and_again_after_a_change(django_capture_on_commit_callbacks):
    action = Action.objects.get(key="gmail-send")
    names = tool_names()
    assert names[action.pk].label == action.label
    assert tool_names([action.pk]) is names  # the same snapshot: nothing built again
    with django_capture_on_commit_callbacks(execute=True):  # the snapshot is dropped once the change commits
        action_update(
            action_id=action.pk, actor=UserFactory(is_staff=True, is_superuser=True), changes={"label": "Send an email"}
        )
    assert tool_names()[action.pk].label == "Send an email"  # the change reloaded the snapshot
    with pytest.raises(TypeError):
        names[action.pk] = names[action.pk]  # shared by every caller: read-only


def test_a_retired_tool_is_read_from_the_database_without_changing_the_kept_names():
    retired = Action.objects.get(key="gmail-send")
    Action.objects.filter(pk=retired.pk).update(is_active=False)
    catalog_invalidate()
    kept = tool_names()
    assert retired.pk not in kept
    named = tool_names([retired.pk, None])
    assert named[retired.pk].key == "gmail-send"
    assert retired.pk not in tool_names()  # the retired one was not added to what every caller shares
