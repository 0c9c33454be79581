"""The ledger in the admin: nobody can change it, and its pages never count or scan it."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.admin.paging import PeekPaginator
from billing.admin.queries import ledger_rows_newest_first
from billing.credits import credits
from billing.models import Action, LedgerEntry
from billing.services import charge, credits_adjust, entry_post, wallet_lock
from tests.admin.conftest import make_person
from tests.conftest import fund
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_ledgerentry_changelist"


def _entry(ws) -> LedgerEntry:
    return LedgerEntry.objects.filter(workspace=ws).order_by("id").first()


@pytest.mark.parametrize("role", ["staff", "staff_with_permission", "superuser"])
def test_nobody_adds_changes_or_deletes_an_entry_through_the_admin(client, busy_workspace, role):
    client.force_login(make_person(role))
    entry = _entry(busy_workspace)
    before = list(LedgerEntry.objects.order_by("id").values())
    change = reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    delete = reverse("admin:billing_ledgerentry_delete", args=[entry.pk])
    add = reverse("admin:billing_ledgerentry_add")

    page = client.get(change)
    assert page.status_code == 200  # a view, without a form to save
    assert 'name="_save"' not in page.content.decode() and "Delete" not in page.content.decode()
    assert client.post(change, {"reason": "rewritten", "plan_delta": "0", "kind": "refund"}).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(add).status_code == 403
    assert client.post(add, {"kind": "adjustment", "reason": "free money"}).status_code == 403

    changelist = client.get(reverse(CHANGELIST))
    assert changelist.status_code == 200
    assert "delete_selected" not in changelist.content.decode() and 'name="action"' not in changelist.content.decode()
    bulk = client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert list(LedgerEntry.objects.order_by("id").values()) == before


def _changelist_sql(client, query: dict) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200, response
    return response, [q["sql"] for q in queries.captured_queries]


FILTERS = [
    {},
    {"kind": "adjustment"},
    {"kind__exact": "usage"},
    {"bucket": "plan"},
    {"bucket": "top_up"},
    {"created_at__gte": "2020-01-01T00:00:00+00:00", "created_at__lt": "2100-01-01T00:00:00+00:00"},
    {"q": "dm-1"},
    {"q": "cs_test_123"},
]


@pytest.mark.parametrize("query", FILTERS)
def test_no_page_counts_the_ledger_or_reads_filter_choices_from_it(client, busy_workspace, query):
    client.force_login(make_person("superuser"))
    action = Action.objects.get(key="linkedin-dm")
    for extra in ({}, {"workspace": str(busy_workspace.pk)}, {"action": str(action.pk)}):
        _, sql = _changelist_sql(client, {**query, **extra})
        ledger_reads = [s for s in sql if '"billing_ledgerentry"' in s or "billing_ledgerentry " in s]
        assert not [s for s in sql if "COUNT(" in s.upper()], sql
        assert not [s for s in ledger_reads if "DISTINCT" in s.upper()], ledger_reads
        # One page of entries, with its rows' workspace, tool and actor joined in (no N+1).
        # (A search that finds nothing needs no page at all.)
        pages = [s for s in ledger_reads if 'ORDER BY "billing_ledgerentry"."id" DESC LIMIT' in s]
        assert len(pages) <= 1 if "q" in query else len(pages) == 1, ledger_reads


def test_the_page_costs_the_same_queries_for_5_or_60_entries(client, busy_workspace):
    client.force_login(make_person("superuser"))
    _, few = _changelist_sql(client, {})
    fund(busy_workspace, topup=100_000)
    for n in range(55):
        charge(workspace=busy_workspace, action="gmail-send", quantity=1, idempotency_key=f"mail-{n}")
    response, many = _changelist_sql(client, {})
    assert len(many) == len(few)
    assert len(response.context["cl"].result_list) == 50


def test_pages_go_newer_and_older_without_counting(client):
    ws = WorkspaceFactory()
    fund(ws, topup=100_000)
    for n in range(119):
        charge(
            workspace=ws, action="gmail-send", quantity=1, idempotency_key=f"mail-{n}"
        )  # 121 with the grant and funding
    client.force_login(make_person("superuser"))
    seen = []
    query = {"workspace": str(ws.pk)}
    for page, (has_newer, has_older, rows) in enumerate([(False, True, 50), (True, True, 50), (True, False, 21)], 1):
        response, sql = _changelist_sql(client, {**query, "p": page})
        assert not [s for s in sql if "COUNT(" in s.upper()]
        cl = response.context["cl"]
        assert (bool(cl.newer_url), bool(cl.older_url), len(cl.result_list)) == (has_newer, has_older, rows)
        seen += [entry.pk for entry in cl.result_list]
    assert seen == list(LedgerEntry.objects.filter(workspace=ws).order_by("-id").values_list("id", flat=True))
    # Past the end is a bad link, not a crash.
    assert client.get(reverse(CHANGELIST), {**query, "p": 9}).status_code == 302


def test_the_paginator_reads_one_row_past_the_page_once():
    rows = list(range(7))
    paginator = PeekPaginator(rows, 3, page_number=2)
    page = paginator.page(2)
    assert list(page.object_list) == [3, 4, 5] and page.has_next() and page.has_previous()
    assert paginator.count == 7 and paginator.has_older
    last = PeekPaginator(rows, 3, page_number=3)
    assert list(last.page(3).object_list) == [6] and not last.has_older and not last.page(3).has_next()


def test_filters_select_what_they_name(client, busy_workspace, billing_staff):
    other = WorkspaceFactory()
    adjustment = credits_adjust(
        workspace_id=other.pk,
        bucket="plan",
        amount=credits(5),
        description="Goodwill credit",
        internal_note="goodwill",
        actor=billing_staff,
        idempotency_key="t-1",
    )
    client.force_login(make_person("superuser"))

    def ids(query):
        return {entry.pk for entry in client.get(reverse(CHANGELIST), query).context["cl"].result_list}

    everything = set(LedgerEntry.objects.values_list("id", flat=True))
    assert ids({}) == everything
    assert ids({"workspace": str(other.pk)}) == set(other.ledger_entries.values_list("id", flat=True))
    assert ids({"kind__exact": "adjustment"}) == set(
        LedgerEntry.objects.filter(kind="adjustment").values_list("id", flat=True)
    )
    assert adjustment.pk in ids({"kind__exact": "adjustment", "workspace": str(other.pk)})
    dm = Action.objects.get(key="linkedin-dm")
    assert ids({"action": str(dm.pk)}) == set(LedgerEntry.objects.filter(action=dm).values_list("id", flat=True))
    assert ids({"bucket": "top_up"}) == set(LedgerEntry.objects.exclude(topup_delta=0).values_list("id", flat=True))
    assert ids({"bucket": "plan"}) == set(LedgerEntry.objects.exclude(plan_delta=0).values_list("id", flat=True))
    assert ids({"created_at__gte": "2000-01-01T00:00:00+00:00", "created_at__lt": "2001-01-01T00:00:00+00:00"}) == set()
    # Search: the exact idempotency key, in every workspace or in the chosen one, and a Stripe id.
    dm_1 = LedgerEntry.objects.get(workspace=busy_workspace, idempotency_key="dm-1").pk
    assert ids({"q": "dm-1"}) == {dm_1}
    assert ids({"q": "dm-1", "workspace": str(other.pk)}) == set()
    assert ids({"q": "dm-"}) == set()  # exact only: a prefix would scan
    assert ids({"q": "adjustment:t-1"}) == {adjustment.pk}
    # Bad filter values are bad links, not crashes.
    for bad in ({"workspace": "x"}, {"action": "1 OR 1=1"}, {"bucket": "both"}):
        assert client.get(reverse(CHANGELIST), bad).status_code == 302
    assert ids({"workspace": "999999"}) == set()  # an unknown workspace lists nothing, not everything


def test_a_stripe_id_finds_its_entries(client, busy_workspace):
    with transaction.atomic():
        wallet = wallet_lock(workspace_id=busy_workspace.pk)
        entry = entry_post(
            wallet,
            kind="top_up",
            topup_delta=credits(100),
            idempotency_key="purchase:cs_test_123",
            external_ref="cs_test_123",
            now=timezone.now(),
        )
    client.force_login(make_person("superuser"))
    response = client.get(reverse(CHANGELIST), {"q": "cs_test_123"})
    assert [e.pk for e in response.context["cl"].result_list] == [entry.pk]


def test_the_workspace_links_to_its_ledger_and_stripe_events(client, busy_workspace):
    client.force_login(make_person("staff"))
    page = client.get(reverse("admin:billing_workspace_change", args=[busy_workspace.pk])).content.decode()
    ledger = reverse(CHANGELIST) + f"?workspace={busy_workspace.pk}"
    assert ledger in page
    assert reverse("admin:billing_stripeevent_changelist") + f"?workspace={busy_workspace.pk}" in page
    listed = client.get(ledger)
    assert "Acme Growth" in listed.content.decode()  # the chosen workspace shows in the filter
    assert len(listed.context["cl"].result_list) == 5


def _export(client, query=None) -> list[list[str]]:
    response = client.get(reverse("admin:billing_ledgerentry_export"), query or {})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_export_streams_the_filtered_entries(client, busy_workspace, billing_staff):
    other = WorkspaceFactory()
    credits_adjust(
        workspace_id=other.pk,
        bucket="top_up",
        amount=credits("-0.5") + credits(1),
        description="=HYPERLINK(evil)",
        internal_note="Customer asked twice; ticket #52",
        actor=billing_staff,
        idempotency_key="x",
    )
    client.force_login(make_person("staff"))
    rows = _export(client)
    assert rows[0][:5] == ["ID", "Time (UTC)", "Workspace ID", "Workspace", "Kind"]
    # Every amount's header names its unit, credits, and none says millicredits.
    amounts = [header for header in rows[0] if "credits" in header]
    assert amounts == [
        "Unit price (credits)", "Amount (credits)", "Plan bucket (credits)", "Top-up (credits)",
        "Plan balance after (credits)", "Top-up balance after (credits)",
    ]  # fmt: skip
    assert not any("(mc)" in header or "milli" in header.lower() for header in rows[0])
    assert len(rows) == 1 + LedgerEntry.objects.count()
    assert [int(r[0]) for r in rows[1:]] == list(LedgerEntry.objects.order_by("-id").values_list("id", flat=True))

    adjustments = _export(client, {"workspace": str(other.pk), "kind__exact": "adjustment"})
    assert len(adjustments) == 2
    row = dict(zip(adjustments[0], adjustments[1], strict=True))
    assert (row["Top-up (credits)"], row["Amount (credits)"], row["Plan bucket (credits)"]) == ("+0.5", "+0.5", "0")
    assert (row["Actor"], row["Reason"]) == (billing_staff.email, "'=HYPERLINK(evil)")
    assert row["Internal note"] == "Customer asked twice; ticket #52"  # staff's export carries staff's note

    dms = _export(client, {"workspace": str(busy_workspace.pk), "q": "dm-2"})
    assert [r[5] for r in dms[1:]] == ["linkedin-dm"]
    dm = dict(zip(dms[0], dms[1], strict=True))  # 1,500 credits a call, in credits, not 1500000
    assert (dm["Unit price (credits)"], dm["Amount (credits)"]) == ("1500", "-1500")


def test_only_those_who_may_view_the_ledger_export_it(client, busy_workspace):
    url = reverse("admin:billing_ledgerentry_export")
    assert client.get(url).status_code == 302  # the login page
    client.force_login(make_person("member", workspace=busy_workspace))
    assert client.get(url).status_code == 302
    staff = make_person("staff_with_permission")
    staff.user_permissions.clear()
    client.force_login(staff)
    assert client.get(url).status_code == 403


def test_funding_helper_entries_appear_with_both_buckets(client):
    ws = WorkspaceFactory()
    fund(ws, plan=3, topup=7)
    client.force_login(make_person("superuser"))
    page = client.get(reverse(CHANGELIST), {"workspace": str(ws.pk)}).content.decode()
    assert "3 / 7" in page


@pytest.mark.parametrize("value", ["x", "²", "9" * 19, "9" * 5_000])  # not digits to int(), past bigint, past int()
@pytest.mark.parametrize("parameter", ["workspace", "action"])
def test_an_export_or_list_with_a_bad_filter_is_a_bad_link_not_a_crash(client, busy_workspace, parameter, value):
    client.force_login(make_person("staff"))
    for url in (reverse("admin:billing_ledgerentry_export"), reverse(CHANGELIST)):
        response = client.get(url, {parameter: value})
        assert response.status_code == 302 and response["Location"].endswith("?e=1"), url


def test_a_column_sort_in_the_link_is_ignored_the_order_stays_newest_first(client, busy_workspace):
    client.force_login(make_person("superuser"))
    response, sql = _changelist_sql(client, {"o": "4.-3.1"})
    ids = [entry.pk for entry in response.context["cl"].result_list]
    assert ids == sorted(ids, reverse=True)
    page = [s for s in sql if 'ORDER BY "billing_ledgerentry"."id" DESC LIMIT' in s]
    assert len(page) == 1


def test_the_export_reads_keyset_chunks_newest_first(busy_workspace):
    queryset = LedgerEntry.objects.filter(workspace=busy_workspace)
    with CaptureQueriesContext(connection) as captured:
        rows = list(ledger_rows_newest_first(queryset, fields=["id", "kind"], chunk=2))
    expected = list(queryset.order_by("-id").values_list("id", "kind"))
    assert rows == expected and len(expected) == 5
    assert len(captured) == 3  # 2 + 2 + 1
    assert all('"billing_ledgerentry"."id" <' in q["sql"] for q in captured.captured_queries[1:])


@pytest.mark.parametrize("model", ["ledgerentry", "stripeevent", "hold"])
def test_a_big_table_pages_newer_and_older_and_its_search_shows_no_result_count(client, busy_workspace, model):
    client.force_login(make_person("superuser"))
    url = reverse(f"admin:billing_{model}_changelist")
    listing = client.get(url).content.decode()
    assert re.search(r'<p class="paginator">\s*(\S[^<]*, newest first|No \w)', listing), model  # the peek pager
    html = client.get(url, {"q": "dm-1"}).content.decode()
    assert 'id="searchbar"' in html and 'value="dm-1"' in html
    assert not re.search(r"\d+ results?\b", html) and "Show all" not in html and " total)" not in html


def test_staff_read_both_the_customers_description_and_the_internal_note(client, busy_workspace, billing_staff):
    entry = credits_adjust(
        workspace_id=busy_workspace.pk,
        bucket="top_up",
        amount=credits(25),
        description="Goodwill credit for the outage",
        internal_note="Angry on the phone; ticket #4411",
        actor=billing_staff,
        idempotency_key="notes",
    )
    client.force_login(make_person("staff"))  # view permissions only: support reads the note too
    listed = client.get(reverse(CHANGELIST), {"workspace": str(busy_workspace.pk)}).content.decode()
    newest = re.findall(r'<td class="field-texts">(.*?)</td>', listed)[0]  # the list is newest first
    assert (
        newest == 'Goodwill credit for the outage<br><span class="quiet">Note: Angry on the phone; ticket #4411</span>'
    )
    page = client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk])).content.decode()
    assert "Goodwill credit for the outage" in page and "Angry on the phone; ticket #4411" in page
    assert "Internal note" in page and "never shown to the customer" in page


def test_a_long_key_is_cut_to_its_column_and_shown_whole_on_hover(client, billing_staff):
    ws = WorkspaceFactory(name="Keys <&> Co")
    fund(ws, topup=10)
    key = "batch-2027-05-03/" + "x" * 40
    charge(workspace=ws, action="gmail-send", idempotency_key=key)
    client.force_login(billing_staff)
    listed = client.get(reverse(CHANGELIST), {"workspace": str(ws.pk)}).content.decode()
    [cell] = re.findall(rf'<td class="field-key"><span title="{re.escape(key)}">(.*?)</span></td>', listed)
    assert cell == key[:31] + "…"
    # The workspace's name is text, escaped, in a link to its page.
    link = reverse("admin:billing_workspace_change", args=[ws.pk])
    assert f'<a href="{link}">Keys &lt;&amp;&gt; Co</a>' in listed
