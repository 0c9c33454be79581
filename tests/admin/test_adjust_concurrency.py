"""A confirmation submitted twice at once (a double click, two tabs) adjusts once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from billing.credits import credits
from billing.models import LedgerEntry
from billing.services import credits_adjust
from tests.billing.test_charge_concurrency import assert_books_balance, in_threads
from tests.conftest import balances
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.concurrency]

SUBMITS = 6


def test_the_same_confirmation_at_once_from_several_requests_writes_one_entry():
    ws = WorkspaceFactory()
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="adjust_credits"))
    before = balances(ws)

    def submit(index, barrier):
        barrier.wait()
        entry = credits_adjust(
            workspace_id=ws.pk,
            bucket="top_up",
            amount=credits(75),
            description="Goodwill credit",
            internal_note="goodwill, ticket #9",
            actor=type(staff).objects.get(pk=staff.pk),
            idempotency_key="0123456789abcdef0123456789abcdef",
        )
        return entry.pk, entry.replayed

    results = in_threads(SUBMITS, submit)
    assert len({pk for pk, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False] + [True] * (SUBMITS - 1)
    assert LedgerEntry.objects.filter(workspace=ws, kind="adjustment").count() == 1
    assert balances(ws) == (before[0], before[1] + credits(75))
    assert_books_balance()
