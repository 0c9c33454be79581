"""Reads that may lag go to the replica (DATABASE_REPLICA_URL); everything else reads the primary.

In tests the ``replica`` alias is the test database itself (a test MIRROR, sigora/settings/test.py)
on a second connection. To see which alias a page reads, each test counts the queries on each
connection; to see that a page never shows a stale answer, the replica lags (``lagging_replica``
in tests/conftest.py).
"""

from __future__ import annotations

import re

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from api.credentials import api_key_create, credentials_forget
from billing import db
from billing.credits import credits, format_credits
from billing.models import Hold, LedgerEntry, StripeEvent, Workspace
from billing.services import charge, credits_adjust, hold_place
from tests.conftest import REPLICA_TEST, balances, fund
from tests.factories import UserFactory, WorkspaceFactory

ON_BOTH = {"databases": ["default", "replica"]}

LEDGER, HOLDS, EVENTS = (model._meta.db_table for model in (LedgerEntry, Hold, StripeEvent))


@pytest.fixture
def people():
    """A workspace with some history, its owner, and a superuser for the admin."""
    owner = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=owner, name="Replicated")
    fund(workspace, topup=1_000)
    for n in range(3):
        charge(workspace=workspace, action="claude-haiku", quantity=7, idempotency_key=f"run-{n}")
    hold_place(workspace=workspace, amount=credits(5), idempotency_key="hold-1")
    staff = UserFactory(email="root@example.test", is_staff=True, is_superuser=True)
    return {"workspace": workspace, "owner": owner, "staff": staff}


def tables_read(queries: CaptureQueriesContext) -> set[str]:
    """The billing tables a connection's captured queries read."""
    return {table for query in queries for table in re.findall(r"\b(billing_\w+|api_\w+)\b", query["sql"])}


def get(client, user, url: str, query: dict | None = None) -> tuple[int, bytes, set[str], set[str]]:
    """A GET as ``user``: its status, body, and the tables it read on the primary and on the replica."""
    client.force_login(user)
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        response = client.get(url, query or {})
        body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body, tables_read(primary), tables_read(replica)


def lagging_reads(workspace: Workspace) -> list[tuple[str, str, dict, str]]:
    """(who, url, query, the big table it lists) for each read that may lag."""
    return [
        ("owner", reverse("billing:transactions_csv"), {}, LEDGER),
        ("staff", reverse("admin:billing_ledgerentry_changelist"), {}, LEDGER),
        ("staff", reverse("admin:billing_ledgerentry_changelist"), {"workspace": str(workspace.pk)}, LEDGER),
        ("staff", reverse("admin:billing_ledgerentry_changelist"), {"q": "run-1"}, LEDGER),  # the search
        ("staff", reverse("admin:billing_ledgerentry_export"), {"workspace": str(workspace.pk)}, LEDGER),
        ("staff", reverse("admin:billing_hold_changelist"), {}, HOLDS),
        ("staff", reverse("admin:billing_stripeevent_changelist"), {}, EVENTS),
    ]


@REPLICA_TEST
def test_with_a_replica_the_ledger_lists_exports_and_big_admin_tables_read_it(client, people, with_replica):
    for who, url, query, table in lagging_reads(people["workspace"]):
        status, _, on_primary, on_replica = get(client, people[who], url, query)
        assert status == 200, (url, query)
        assert table in on_replica, (url, query, on_replica)
        assert table not in on_primary, (url, query, on_primary)


@pytest.mark.django_db(**ON_BOTH)
def test_without_a_replica_they_read_the_primary(client, people):
    for who, url, query, table in lagging_reads(people["workspace"]):
        status, _, on_primary, on_replica = get(client, people[who], url, query)
        assert status == 200, (url, query)
        assert table in on_primary, (url, query)
        assert on_replica == set(), (url, query)


@REPLICA_TEST
def test_a_write_then_a_read_of_the_same_page_shows_the_write_while_the_replica_lags(client, people, lagging_replica):
    workspace, owner = people["workspace"], people["owner"]
    _, secret = api_key_create(workspace=workspace, name="scripts", actor=None)
    credentials_forget()
    before = sum(balances(workspace))

    entry = credits_adjust(
        workspace_id=workspace.pk,
        bucket=LedgerEntry.Bucket.TOP_UP,
        amount=credits(500),
        description="Goodwill credit",
        internal_note="ticket 42",
        actor=people["staff"],
        idempotency_key="adjust-1",
    )
    after = before + credits(500)

    # The customer's billing page: the new balance, the new entry on top; nothing read off the replica.
    status, page, _, on_replica = get(client, owner, reverse("billing:settings_billing"))
    assert status == 200
    total = re.search(rb'data-testid="total-credits">([^<]+)<', page).group(1).decode()
    assert total == format_credits(after)
    assert "Goodwill credit" in page.decode()
    assert on_replica == set()
    # Its live balance region and the API's balance say the same.
    status, region, _, on_replica = get(client, owner, reverse("billing:balance"))
    assert status == 200 and f">{format_credits(after)}<" in region.decode() and on_replica == set()
    client.logout()
    with CaptureQueriesContext(connections["replica"]) as replica:
        answer = client.get("/api/v1/balance", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    assert answer.json()["balance"]["total"]["millicredits"] == after
    assert len(replica) == 0
    # Staff: the workspace's admin page and the entry's own page read the primary too.
    status, staff_page, _, on_replica = get(
        client, people["staff"], reverse("admin:billing_workspace_change", args=[workspace.pk])
    )
    assert status == 200 and format_credits(after) in staff_page.decode() and on_replica == set()
    status, entry_page, _, on_replica = get(
        client, people["staff"], reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    )
    assert status == 200 and b"ticket 42" in entry_page and on_replica == set()

    # What may lag does: the export (from the replica, which has not caught up) has no such entry yet.
    status, export, _, _ = get(client, owner, reverse("billing:transactions_csv"))
    assert status == 200 and b"run-1" in export and b"Goodwill credit" not in export


@REPLICA_TEST
def test_inside_a_transaction_a_lagging_read_stays_on_the_primary(with_replica):
    assert db.replica_or_primary() == "replica"
    with transaction.atomic():
        assert db.replica_or_primary() == DEFAULT_DB_ALIAS


@REPLICA_TEST
def test_a_row_read_from_the_replica_is_saved_to_the_primary(people):
    workspace = Workspace.objects.using("replica").get(pk=people["workspace"].pk)
    workspace.name = "Renamed"
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["replica"]) as replica,
    ):
        workspace.save(update_fields=["name"])
    assert [q["sql"].split()[0] for q in primary] == ["UPDATE"]
    assert len(replica) == 0
    assert not router.allow_migrate("replica", "billing")
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "billing")


def test_reads_sent_together_must_share_a_database():
    one, other = db.Read("SELECT 1", [], list), db.Read("SELECT 2", [], list, "replica")
    with pytest.raises(ValueError, match="share one database"):
        db.reads_run(one, other)
