"""Refunds and disputes take the refunded share of a purchase's credits back out, never below zero."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.credits import credits
from billing.models import LedgerEntry, Purchase
from billing.selectors import ledger_audit
from tests.conftest import balances, fund
from tests.factories import UserFactory, WorkspaceFactory

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def bought(client, double, pack_key="100k"):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    client.force_login(owner)
    assert client.post(reverse("billing:purchase", args=["top-up", pack_key])).status_code == 303
    purchase = Purchase.objects.get(workspace=ws)
    double.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    double.wait_for_deliveries()
    purchase.refresh_from_db()
    assert purchase.status == "paid"
    return ws, purchase


def refunds(ws):
    return list(LedgerEntry.objects.filter(workspace=ws, kind="refund").order_by("id"))


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


@live
def test_a_partial_then_full_refund_removes_the_refunded_share(client, webhooks, stripe_client):
    ws, purchase = bought(client, webhooks, "100k")
    plan, topup = balances(ws)
    stripe_client.v1.refunds.create(
        {"payment_intent": purchase.stripe_payment_intent_id, "amount": purchase.amount_cents // 4}
    )
    webhooks.wait_for_deliveries()
    [first] = refunds(ws)
    assert first.topup_delta == -purchase.credits // 4 and first.plan_delta == 0
    assert balances(ws) == (plan, topup - purchase.credits // 4)

    stripe_client.v1.refunds.create({"payment_intent": purchase.stripe_payment_intent_id})  # the rest
    webhooks.wait_for_deliveries()
    assert sum(e.topup_delta for e in refunds(ws)) == -purchase.credits
    assert balances(ws) == (plan, topup - purchase.credits)
    purchase.refresh_from_db()
    assert purchase.refunded_cents == purchase.amount_cents and purchase.credits_reversed == purchase.credits
    assert purchase.shortfall == 0
    # The same refund event again changes nothing.
    for event in [e for e in webhooks.events if e["type"] == "charge.refunded"]:
        webhooks.redeliver(event["id"], times=3, concurrently=True)
    webhooks.wait_for_deliveries()
    assert len(refunds(ws)) == 2
    assert books_balanced()


@live
def test_credits_already_spent_are_recorded_as_a_shortfall_not_a_negative_balance(client, webhooks, stripe_client):
    ws, purchase = bought(client, webhooks, "50k")
    # Most of the pack is spent: 10,000 credits are left in top-ups, none in the bucket.
    fund(ws, plan=0, topup=10_000)
    stripe_client.v1.refunds.create({"payment_intent": purchase.stripe_payment_intent_id})
    webhooks.wait_for_deliveries()
    [entry] = refunds(ws)
    assert entry.topup_delta == -credits(10_000) and balances(ws) == (0, 0)
    assert entry.metadata["shortfall"] == purchase.credits - credits(10_000)
    purchase.refresh_from_db()
    assert purchase.shortfall == purchase.credits - credits(10_000)
    assert purchase.credits_reversed == purchase.credits
    assert "shortfall" in entry.reason
    assert books_balanced()


@live
def test_a_dispute_holds_back_the_disputed_share(client, webhooks):
    ws, purchase = bought(client, webhooks, "100k")
    plan, topup = balances(ws)
    webhooks.dispute(purchase.stripe_charge_id)
    webhooks.wait_for_deliveries()
    [entry] = refunds(ws)
    assert entry.topup_delta == -purchase.credits and entry.external_ref.startswith("dp_")
    assert balances(ws) == (plan, topup - purchase.credits)
    assert books_balanced()
