"""The usage and transactions regions follow the balance in a real browser, without a reload.

A charge made elsewhere moves the balance's ETag; its poll fires balance-changed, and the usage
region and the transactions list refresh: the list keeps its filter, the pages "Load more"
brought and where the reader had scrolled to, with the new entry on top. While nothing
changes, the poll is a 304 and nothing else is asked.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.credits import format_credits
from billing.services import charge, charge_batch
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WIDE = {"width": 1366, "height": 768}
POLL_WAIT = 5_000  # a poll a second (below), then one request per region
BALANCE = re.compile(r"/settings/billing/balance/$")


@pytest.fixture(autouse=True)
def quick_poll(settings):
    settings.BALANCE_POLL_SECONDS = 1


@pytest.fixture
def owner_ws(db):
    owner = UserFactory(email="owner@example.test")
    return owner, WorkspaceFactory(owner=owner, name="Acme")


def spent(entries) -> int:
    """Millicredits the entries took from the wallet."""
    return -sum(entry.plan_delta + entry.topup_delta for entry in entries)


def test_a_charge_made_elsewhere_lands_on_top_of_the_filtered_loaded_and_scrolled_list(browsers, owner_ws):
    owner, workspace = owner_ws
    haiku = charge_batch(
        workspace=workspace.pk,
        events=[{"action": "claude-haiku", "quantity": 7, "idempotency_key": f"h{i}"} for i in range(80)],
    )
    gmail = charge_batch(
        workspace=workspace.pk, events=[{"action": "gmail-send", "idempotency_key": f"g{i}"} for i in range(10)]
    )

    page = browsers.page(viewport=WIDE, user=owner)
    page.goto("/settings/billing/")
    page.evaluate("window.__marker = 1")
    table = page.get_by_test_id("transactions")
    rows = table.locator("tr[data-entry]")
    other_rows = rows.filter(has_not_text="Claude Haiku")
    used = page.locator("#usage .stat").first
    expect(used).to_have_text(format_credits(spent(haiku) + spent(gmail)))

    tool_filter = page.locator("#transactions").get_by_label("Tool")
    tool_filter.select_option("claude-haiku")
    expect(other_rows).to_have_count(0)
    expect(rows).to_have_count(25)
    for count in (50, 75):
        page.get_by_role("link", name="Load more").click()
        expect(rows).to_have_count(count)
    shown = rows.evaluate_all("rows => rows.map(row => Number(row.dataset.entry))")
    assert shown == sorted((entry.pk for entry in haiku), reverse=True)[:75]

    # The reader scrolls down to the 60th row and reads it there.
    reading = table.locator(f'tr[data-entry="{shown[59]}"]')
    reading.evaluate("row => row.scrollIntoView({block: 'center'})")
    top = reading.bounding_box()["y"]
    assert page.evaluate("window.scrollY") > 1000

    elsewhere = charge(workspace=workspace.pk, action="gmail-send", idempotency_key="later-g")  # not under the filter
    new = charge(workspace=workspace.pk, action="claude-haiku", quantity=7, idempotency_key="later-h")

    expect(rows.first).to_have_attribute("data-entry", str(new.pk), timeout=POLL_WAIT)
    expect(used).to_have_text(format_credits(spent(haiku) + spent(gmail) + spent([elsewhere, new])), timeout=POLL_WAIT)
    expect(page.locator("#usage tr", has_text="Claude Haiku")).to_contain_text(format_credits(spent([*haiku, new])))
    # The filter still applies, every row loaded before is still there under the new one.
    expect(tool_filter).to_have_value("claude-haiku")
    expect(other_rows).to_have_count(0)
    expect(rows).to_have_count(76)
    assert rows.evaluate_all("rows => rows.map(row => Number(row.dataset.entry))") == [new.pk, *shown]
    # The row being read has not moved on the screen.
    assert abs(reading.bounding_box()["y"] - top) <= 1, (top, reading.bounding_box()["y"])
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"

    # "Load more" carries on from where the list had got to: the last five Haiku calls.
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(81)
    expect(page.get_by_role("link", name="Load more")).to_have_count(0)


def test_an_unchanged_balance_polls_a_304_and_asks_nothing_else(browsers, owner_ws):
    owner, workspace = owner_ws
    page = browsers.page(viewport=WIDE, user=owner)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(re.sub(r"^https?://[^/]+", "", request.url)))
    page.goto("/settings/billing/")
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")

    def next_poll():
        with page.expect_response(lambda response: BALANCE.search(response.url), timeout=POLL_WAIT) as poll:
            pass
        return poll.value

    asked.clear()
    assert [next_poll().status, next_poll().status] == [304, 304]
    assert asked == ["/settings/billing/balance/"] * 2  # the poll alone, nothing refreshed

    entry = charge(workspace=workspace.pk, action="gmail-send", idempotency_key="moved")
    asked.clear()
    assert next_poll().status == 200
    expect(page.get_by_test_id("transactions").locator("tr[data-entry]").first).to_have_attribute(
        "data-entry", str(entry.pk)
    )
    expect(page.locator("#usage .stat").first).to_have_text(format_credits(spent([entry])))
    assert next_poll().status == 304  # quiet again
    paths = [url.split("?")[0] for url in asked]
    assert sorted(paths) == sorted(
        ["/settings/billing/balance/"] * 2 + ["/settings/billing/transactions/", "/settings/billing/usage/"]
    ), asked
