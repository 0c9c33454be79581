"""The monthly spend guardrail: charges beyond the budget are refused like a cap; owners are told once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing.credits import credits
from billing.errors import InvalidRequest, MonthlyBudgetReached
from billing.models import Activity, LedgerEntry, RefusalTally, Wallet
from billing.selectors import ledger_audit
from billing.services import budget_set, charge, charge_batch
from billing.services.resets import periods_reset
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory


@pytest.mark.django_db
def test_a_charge_past_the_budget_is_refused_and_writes_nothing(django_capture_on_commit_callbacks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    budget_set(workspace=ws, monthly_budget=credits(400), actor=owner)
    charge(workspace=ws.pk, action="gmail-send", quantity=1, idempotency_key="a")  # 200 credits
    charge(workspace=ws.pk, action="gmail-send", quantity=1, idempotency_key="b")  # 400: exactly the budget
    entries = LedgerEntry.objects.filter(workspace=ws).count()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(MonthlyBudgetReached) as caught:
        charge(workspace=ws.pk, action="gmail-send", quantity=1, idempotency_key="c")
    error = caught.value
    assert error.code == "daily_cap_reached" and error.http_status == 429
    assert error.details["limit"] == "monthly_budget" and "monthly budget of 400 credits" in error.message
    assert error.resets_at == Wallet.objects.get(workspace=ws).period_end
    assert LedgerEntry.objects.filter(workspace=ws).count() == entries
    assert Wallet.objects.get(workspace=ws).period_spend == credits(400)
    assert RefusalTally.objects.get(workspace=ws).code == "daily_cap_reached"
    # Owners are told once per period, however many charges are refused.
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(MonthlyBudgetReached):
        charge(workspace=ws.pk, action="gmail-send", quantity=1, idempotency_key="d")
    [message] = mail.outbox
    assert message.to == [owner.email] and "monthly budget" in message.subject


@pytest.mark.django_db
def test_a_batch_over_the_budget_is_refused_whole_and_a_new_period_starts_over():
    ws = WorkspaceFactory()
    fund(ws, plan=10_000, topup=0)
    budget_set(workspace=ws, monthly_budget=credits(500))
    events = [{"action": "gmail-send", "quantity": 1, "idempotency_key": f"k{i}"} for i in range(3)]  # 600 credits
    with pytest.raises(MonthlyBudgetReached):
        charge_batch(workspace=ws.pk, events=events)
    assert not LedgerEntry.objects.filter(workspace=ws, kind="usage").exists()
    charge_batch(workspace=ws.pk, events=events[:2])
    assert Wallet.objects.get(workspace=ws).period_spend == credits(400)
    periods_reset(now=timezone.now() + timedelta(days=32))
    assert Wallet.objects.get(workspace=ws).period_spend == 0
    charge_batch(workspace=ws.pk, events=[{**e, "idempotency_key": f"n{i}"} for i, e in enumerate(events[:2])])


@pytest.mark.django_db
def test_budget_changes_are_validated_and_recorded():
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    with pytest.raises(InvalidRequest) as caught:
        budget_set(workspace=ws, monthly_budget=-1, actor=owner)
    assert caught.value.field == "budget"
    budget_set(workspace=ws, monthly_budget=credits(500), actor=owner)
    budget_set(workspace=ws, monthly_budget=None, actor=owner)
    details = list(
        Activity.objects.filter(workspace=ws, verb="budget_changed").order_by("id").values_list("detail", flat=True)
    )
    assert details == ["500 credits a month", "no monthly budget"]
    charge(workspace=ws.pk, action="claude-opus", quantity=100, idempotency_key="free-again")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.concurrency
def test_concurrent_charges_never_pass_the_budget():
    ws = WorkspaceFactory()
    budget_set(workspace=ws, monthly_budget=credits(4_000))  # 20 emails of 200 credits
    refused, errors = [], []

    def send(worker: int) -> None:
        try:
            for i in range(10):
                try:
                    charge(workspace=ws.pk, action="gmail-send", quantity=1, idempotency_key=f"w{worker}-{i}")
                except MonthlyBudgetReached:
                    refused.append(1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert LedgerEntry.objects.filter(workspace=ws, kind="usage").count() == 20 and len(refused) == 40
    assert Wallet.objects.get(workspace=ws).period_spend == credits(4_000)
    assert all(not chunk.problems for chunk in ledger_audit())
