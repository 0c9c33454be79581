"""What the database itself refuses, whatever the application code does."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Action, LedgerEntry, Wallet

pytestmark = pytest.mark.django_db


def entry(workspace, **overrides):
    wallet = Wallet.objects.get(workspace=workspace)
    fields = {
        "workspace": workspace,
        "kind": LedgerEntry.Kind.ADJUSTMENT,
        "plan_delta": 0,
        "topup_delta": 1_000,
        "plan_balance_after": wallet.plan_balance,
        "topup_balance_after": wallet.topup_balance + 1_000,
        "idempotency_key": "k-1",
        "reason": "test",
        "created_at": timezone.now(),
    }
    fields.update(overrides)
    return LedgerEntry(**fields)


def refused(callable_):
    with pytest.raises(IntegrityError), transaction.atomic():
        callable_()


def test_a_wallet_balance_cannot_go_negative(workspace):
    refused(lambda: Wallet.objects.filter(workspace=workspace).update(plan_balance=-1))
    refused(lambda: Wallet.objects.filter(workspace=workspace).update(topup_balance=-1))
    assert Wallet.objects.get(workspace=workspace).plan_balance == 10_000_000


def test_an_entry_cannot_record_a_negative_balance(workspace):
    refused(lambda: entry(workspace, plan_balance_after=-5).save())
    refused(lambda: entry(workspace, topup_balance_after=-5).save())


def test_an_idempotency_key_is_used_once_per_workspace(workspace):
    entry(workspace).save()
    refused(lambda: entry(workspace).save())
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="k-1").count() == 1


def test_the_same_key_is_free_in_another_workspace(workspace):
    from tests.factories import WorkspaceFactory

    other = WorkspaceFactory()
    entry(workspace).save()
    entry(other).save()
    assert LedgerEntry.objects.filter(idempotency_key="k-1").count() == 2


def test_the_ledger_is_append_only(workspace):
    grant = LedgerEntry.objects.get(workspace=workspace)
    refused(lambda: LedgerEntry.objects.filter(pk=grant.pk).update(reason="rewritten"))
    refused(lambda: LedgerEntry.objects.filter(pk=grant.pk).delete())
    grant.refresh_from_db()
    assert grant.reason == "Free plan: monthly credits"


def test_usage_must_name_what_was_used_and_only_debit(workspace):
    refused(lambda: entry(workspace, kind=LedgerEntry.Kind.USAGE, topup_delta=-1).save())
    haiku = Action.objects.get(key="claude-haiku")
    usage = {"kind": LedgerEntry.Kind.USAGE, "action": haiku, "quantity": 7, "unit_price": 100, "list_amount": 700}
    refused(lambda: entry(workspace, **usage).save())  # a credit, not a debit
    refused(lambda: entry(workspace, **{**usage, "quantity": 0}, topup_delta=0).save())


def test_adjustments_need_a_reason_and_keys_cannot_be_empty(workspace):
    refused(lambda: entry(workspace, reason="").save())
    refused(lambda: entry(workspace, idempotency_key="").save())


def test_an_adjustment_a_person_made_keeps_an_internal_note(workspace):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True)
    refused(lambda: entry(workspace, actor=staff).save())  # the note defaults to "" in Python and in SQL
    refused(lambda: entry(workspace, actor=staff, internal_note="", idempotency_key="k-2").save())
    entry(workspace, actor=staff, internal_note="ticket #1", idempotency_key="k-3").save()
    entry(workspace, idempotency_key="k-4").save()  # written by no one (test funding): a reason is enough
    notes = dict(LedgerEntry.objects.filter(kind="adjustment").values_list("idempotency_key", "internal_note"))
    assert notes == {"k-3": "ticket #1", "k-4": ""}
