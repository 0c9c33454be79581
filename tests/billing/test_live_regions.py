"""The regions that follow the balance: its poll fires balance-changed, and usage and transactions refresh.

The browser side (the event, the swaps, the scroll) is tests/browser/test_live_regions.py.
"""

import re
from html import unescape

import pytest
from django.urls import reverse

from billing.services import charge, charge_batch
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def owner(client, db):
    user = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=user, name="Live")
    client.force_login(user)
    client.workspace = workspace
    return client


def haiku(n: int, prefix: str = "h") -> list[dict]:
    return [{"action": "claude-haiku", "quantity": 7, "idempotency_key": f"{prefix}{i}"} for i in range(n)]


def gmail(n: int, prefix: str = "g") -> list[dict]:
    return [{"action": "gmail-send", "idempotency_key": f"{prefix}{i}"} for i in range(n)]


def news_url(html: str) -> str:
    """The URL the transactions list asks when the balance moves (its empty tbody's hx-get)."""
    found = re.findall(r'<tbody class="tx-news" hx-get="([^"]+)" hx-trigger="balance-changed from:body"', html)
    assert len(found) == 1, found
    return unescape(found[0])


def entry_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-entry="(\d+)"', html)]


def test_the_page_polls_with_the_etag_it_shows_so_the_first_poll_is_a_304(owner):
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    shown = re.search(r"""hx-headers='\{"If-None-Match": "([^']+)"\}'""", page)
    assert shown, "the balance region names no ETag"
    etag = shown[1].encode().decode("unicode_escape")  # escapejs writes its quotes as \u0022
    poll = owner.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=etag, **HTMX)
    assert poll.status_code == 304 and poll.content == b""
    assert "HX-Trigger" not in poll


def test_a_new_etag_fires_balance_changed_only_for_a_page_that_showed_an_older_one(owner):
    first = owner.get(reverse("billing:balance"), **HTMX)
    assert first.status_code == 200 and "HX-Trigger" not in first  # nothing shown before: nothing changed
    assert owner.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=first["ETag"], **HTMX).status_code == 304
    charge(workspace=owner.workspace, action="gmail-send", idempotency_key="moved")
    moved = owner.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=first["ETag"], **HTMX)
    assert moved.status_code == 200 and moved["HX-Trigger"] == "balance-changed"
    # The region it swaps in asks with the new tag, which now answers 304.
    etag = re.search(r""""If-None-Match": "([^']+)"\}'""", moved.content.decode())[1].encode().decode("unicode_escape")
    assert etag == moved["ETag"]
    assert owner.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=etag, **HTMX).status_code == 304


def test_the_usage_and_transactions_regions_listen_for_balance_changed(owner):
    page = owner.get(reverse("billing:settings_billing")).content.decode()
    usage = re.search(r'<section id="usage"[^>]*>', page)[0]
    assert f'hx-get="{reverse("billing:usage")}"' in usage and 'hx-trigger="balance-changed from:body"' in usage
    assert news_url(page).startswith(reverse("billing:transactions") + "?")


def test_new_entries_come_alone_under_the_lists_filters_and_the_list_asks_from_the_newest(owner):
    ws = owner.workspace
    charge_batch(workspace=ws, events=haiku(30))
    charge_batch(workspace=ws, events=gmail(5))
    page = owner.get(reverse("billing:settings_billing"), {"action": "claude-haiku"}).content.decode()
    shown = entry_ids(page)
    assert len(shown) == 25
    url = news_url(page)
    assert "action=claude-haiku" in url and f"since={max(shown)}" in url

    nothing = owner.get(url, **HTMX)
    assert nothing.status_code == 200 and "HX-Retarget" not in nothing
    assert entry_ids(nothing.content.decode()) == []
    assert news_url(nothing.content.decode()) == url  # still asking from the same entry

    charge_batch(workspace=ws, events=gmail(2, "later-g"))  # not under the filter
    new = charge_batch(workspace=ws, events=haiku(3, "later-h"))
    response = owner.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Retarget" not in response
    assert "<h2" not in html and "Load more" not in html  # the rows alone, nothing of the region
    assert entry_ids(html) == sorted((entry.pk for entry in new), reverse=True)
    assert "Cold email" not in html
    again = news_url(html)
    assert f"since={max(entry_ids(html))}" in again and "action=claude-haiku" in again
    assert entry_ids(owner.get(again, **HTMX).content.decode()) == []


def test_new_entries_to_an_empty_list_or_more_than_a_page_redraw_the_region(owner):
    ws = owner.workspace
    charge_batch(workspace=ws, events=gmail(3))
    empty = owner.get(reverse("billing:settings_billing"), {"action": "claude-haiku"}).content.decode()
    assert entry_ids(empty) == []
    nothing_row = re.search(r'<tr><td colspan="7" class="muted">[^<]+</td></tr>', empty)[0]  # "No transactions …"
    url = news_url(empty)
    assert "since=0" in url
    charge(workspace=ws, action="gmail-send", idempotency_key="not-haiku")
    still_empty = owner.get(url, **HTMX)
    assert "HX-Retarget" not in still_empty and entry_ids(still_empty.content.decode()) == []
    assert news_url(still_empty.content.decode()) == url

    first = charge(workspace=ws, action="claude-haiku", quantity=7, idempotency_key="first")
    response = owner.get(url, **HTMX)
    assert response["HX-Retarget"] == "#transactions" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert 'id="transactions"' in html and nothing_row not in html
    assert entry_ids(html) == [first.pk]
    assert 'value="claude-haiku" selected' in html  # the region drawn again keeps the filter

    url = news_url(html)
    charge_batch(workspace=ws, events=haiku(26))  # more than a page since the list's newest
    flood = owner.get(url, **HTMX)
    assert flood["HX-Retarget"] == "#transactions"
    html = flood.content.decode()
    assert len(entry_ids(html)) == 25 and "Load more" in html


def test_new_entries_are_the_workspaces_own(owner):
    stranger = UserFactory(email="stranger@example.test")
    elsewhere = WorkspaceFactory(owner=stranger, name="Elsewhere")
    charge(workspace=owner.workspace, action="gmail-send", idempotency_key="mine")
    url = news_url(owner.get(reverse("billing:settings_billing")).content.decode())
    charge_batch(workspace=elsewhere, events=gmail(3))
    assert entry_ids(owner.get(url, **HTMX).content.decode()) == []


@pytest.mark.parametrize("since", ["abc", "-1", "99999999999999999999999", ""])
def test_a_since_that_is_not_an_entry_id_reads_as_an_empty_list(owner, since):
    charge(workspace=owner.workspace, action="gmail-send", idempotency_key="one")
    newest = owner.get(reverse("billing:transactions"), HTTP_HX_REQUEST="true").content.decode()
    response = owner.get(reverse("billing:transactions"), {"since": since}, **HTMX)
    assert response.status_code == 200 and response["HX-Retarget"] == "#transactions"
    assert entry_ids(response.content.decode()) == entry_ids(newest) != []
