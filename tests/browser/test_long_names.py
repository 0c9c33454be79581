"""Names people choose may be one long word: they wrap in their cell, and the table still fits its card."""

from __future__ import annotations

import pytest

from api.credentials import api_key_create
from tests.browser.conftest import PHONE
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LONG_NAME = "n" * 120  # the longest an API key's name may be, with nowhere to break a line
DESKTOP = {"width": 1366, "height": 900}

# Every table, and the box that holds it: the table must be no wider than the box shows.
OVERFLOWING_TABLES = """() => [...document.querySelectorAll("table")]
  .filter((table) => table.scrollWidth > table.parentElement.clientWidth + 1
                  || table.parentElement.scrollWidth > table.parentElement.clientWidth + 1)
  .map((table) => `${table.dataset.testid}: ${table.scrollWidth} px in ${table.parentElement.clientWidth} px`)"""


@pytest.mark.parametrize(
    ("path", "viewport"),
    [("/settings/api-keys/", DESKTOP), ("/settings/activity/", PHONE), ("/settings/activity/", DESKTOP)],
    ids=["api-keys-desktop", "activity-phone", "activity-desktop"],
)
def test_a_120_character_key_name_wraps_and_keeps_every_column_on_screen(browsers, path, viewport):
    owner = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=owner, name="Acme")
    api_key_create(workspace=workspace, name=LONG_NAME, actor=owner)  # listed on API keys, recorded in Activity
    page = browsers.page(viewport=viewport, user=owner)
    page.goto(path)
    assert LONG_NAME in page.content()
    assert page.evaluate(OVERFLOWING_TABLES) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
