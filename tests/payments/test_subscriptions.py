"""Plans through Stripe: subscribe, upgrade (prorated), downgrade and cancel (next period), renew, fail to renew."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from billing.models import LedgerEntry, Plan, Purchase, Subscription, Wallet, Workspace
from billing.selectors import ledger_audit
from billing.services.stripe_catalog import plan_lookup_key
from tests.factories import UserFactory, WorkspaceFactory

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def subscribe(client, double, owner, plan_key="pro", seats=1):
    client.force_login(owner)
    response = client.post(reverse("billing:purchase", args=["upgrade", plan_key]), {"seats": seats})
    assert response.status_code == 303, response.content[:300]
    purchase = Purchase.objects.filter(created_by=owner, kind="subscription").latest("id")
    double.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    double.wait_for_deliveries()
    return purchase


def price_id(client_lib, plan_key):
    return client_lib.v1.prices.list({"lookup_keys": [plan_lookup_key(plan_key)]}).data[0].id


def change(client_lib, ws, plan_key=None, seats=None):
    sub = Subscription.objects.get(workspace=ws)
    current = client_lib.v1.subscriptions.retrieve(sub.stripe_subscription_id)
    item = current["items"]["data"][0]
    params = {"id": item["id"]}
    if plan_key:
        params["price"] = price_id(client_lib, plan_key)
    if seats:
        params["quantity"] = seats
    client_lib.v1.subscriptions.update(
        sub.stripe_subscription_id, {"items": [params], "proration_behavior": "always_invoice"}
    )


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


@live
def test_subscribing_to_pro_for_three_seats_opens_stripes_period_with_three_buckets(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    pro = Plan.objects.get(key="pro")
    purchase = subscribe(client, webhooks, owner, "pro", seats=3)

    ws.refresh_from_db()
    wallet = Wallet.objects.get(workspace=ws)
    sub = Subscription.objects.get(workspace=ws)
    assert (ws.plan.key, ws.seats) == ("pro", 3)
    assert (sub.plan.key, sub.seats, sub.status) == ("pro", 3, "active")
    assert wallet.plan_balance == wallet.period_allowance == pro.allowance * 3
    assert (wallet.period_start, wallet.period_end) == (sub.current_period_start, sub.current_period_end)
    # The unused Free bucket expired; the Pro grant came once although three events could grant it.
    kinds = list(LedgerEntry.objects.filter(workspace=ws).order_by("id").values_list("kind", flat=True))
    assert kinds == ["plan_grant", "plan_expiry", "plan_grant"]
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.amount_cents == pro.price_cents * 3
    assert purchase.receipt_url.startswith(webhooks.url)
    assert books_balanced()


@live
def test_an_upgrade_grants_the_prorated_difference_once_paid(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "pro", seats=1)
    wallet = Wallet.objects.get(workspace=ws)
    pro, maxi = Plan.objects.get(key="pro"), Plan.objects.get(key="max")
    webhooks.advance(10 * 86400)  # ten days into the period
    change(stripe_client, ws, plan_key="max")
    webhooks.wait_for_deliveries()

    ws.refresh_from_db()
    assert ws.plan.key == "max"
    grant = LedgerEntry.objects.get(workspace=ws, idempotency_key__startswith="plan-upgrade:")
    upgrade = Purchase.objects.get(workspace=ws, kind="upgrade")
    # The moment of the change is the proration line's start, as Stripe prorates the money.
    invoice = stripe_client.v1.invoices.retrieve(upgrade.stripe_invoice_id)
    [line] = [line for line in invoice.lines.data if line.amount > 0]
    changed_at = datetime.fromtimestamp(line.period.start, tz=UTC)
    assert abs(changed_at.timestamp() - (wallet.period_start.timestamp() + 10 * 86400)) < 60
    total = (wallet.period_end - wallet.period_start).total_seconds()
    left = (wallet.period_end - changed_at).total_seconds()
    assert grant.plan_delta == (maxi.allowance - pro.allowance) * int(left) // int(total)
    assert 0 < grant.plan_delta < maxi.allowance - pro.allowance
    assert upgrade.status == "paid" and upgrade.credits == grant.plan_delta
    assert Wallet.objects.get(workspace=ws).period_allowance == pro.allowance + grant.plan_delta
    assert books_balanced()


@live
def test_added_seats_are_granted_prorated_and_fewer_seats_wait_for_the_next_period(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "pro", seats=2)
    pro = Plan.objects.get(key="pro")
    change(stripe_client, ws, seats=4)
    webhooks.wait_for_deliveries()
    ws.refresh_from_db()
    assert ws.seats == 4
    grant = LedgerEntry.objects.get(workspace=ws, idempotency_key__startswith="plan-upgrade:")
    assert 0 < grant.plan_delta <= pro.allowance * 2

    before = Wallet.objects.get(workspace=ws).plan_balance
    change(stripe_client, ws, seats=1)
    webhooks.wait_for_deliveries()
    ws.refresh_from_db()
    assert ws.seats == 4 and Subscription.objects.get(workspace=ws).seats == 1
    assert Wallet.objects.get(workspace=ws).plan_balance == before

    sub = Subscription.objects.get(workspace=ws)
    webhooks.renew(sub.stripe_subscription_id)
    webhooks.wait_for_deliveries()
    ws.refresh_from_db()
    wallet = Wallet.objects.get(workspace=ws)
    assert ws.seats == 1 and wallet.plan_balance == pro.allowance
    assert wallet.period_start == Subscription.objects.get(workspace=ws).current_period_start
    assert books_balanced()


@live
def test_a_renewal_grants_the_new_period_once_and_a_failed_one_marks_past_due(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "max")
    maxi = Plan.objects.get(key="max")
    sub = Subscription.objects.get(workspace=ws)
    first_end = sub.current_period_end

    webhooks.renew(sub.stripe_subscription_id)
    webhooks.wait_for_deliveries()
    wallet = Wallet.objects.get(workspace=ws)
    assert wallet.period_start == first_end and wallet.plan_balance == maxi.allowance
    renewal = Purchase.objects.get(workspace=ws, kind="renewal")
    assert renewal.status == "paid" and renewal.credits == maxi.allowance
    grants = LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count()

    # Redelivering the renewal's events grants nothing more.
    for event in [e for e in webhooks.events if e["type"] == "invoice.paid"]:
        webhooks.redeliver(event["id"], times=2, concurrently=True)
    webhooks.wait_for_deliveries()
    assert LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count() == grants

    webhooks.set_card(Workspace.objects.get(pk=ws.pk).stripe_customer_id, "decline")
    webhooks.renew(sub.stripe_subscription_id)
    webhooks.wait_for_deliveries()
    sub.refresh_from_db()
    assert sub.status == "past_due" and sub.past_due_since is not None
    assert LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count() == grants
    client.force_login(owner)
    page = client.get(reverse("billing:settings_billing")).content.decode()
    assert "past due" in page.lower()
    assert books_balanced()


@live
def test_cancelling_keeps_the_plan_to_the_period_end_then_falls_back_to_free(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "pro")
    sub = Subscription.objects.get(workspace=ws)
    stripe_client.v1.subscriptions.update(sub.stripe_subscription_id, {"cancel_at_period_end": True})
    webhooks.wait_for_deliveries()
    sub.refresh_from_db()
    ws.refresh_from_db()
    assert sub.cancel_at_period_end and ws.plan.key == "pro"

    webhooks.renew(sub.stripe_subscription_id)  # the period ends: Stripe ends the subscription
    webhooks.wait_for_deliveries()
    ws.refresh_from_db()
    sub.refresh_from_db()
    wallet = Wallet.objects.get(workspace=ws)
    assert sub.status == "canceled"
    assert ws.plan.key == "free" and wallet.plan_balance == Plan.objects.get(key="free").allowance
    assert wallet.period_start == sub.current_period_end
    assert books_balanced()


@live
def test_subscription_events_in_reverse_order_end_in_the_same_state(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    client.force_login(owner)
    assert client.post(reverse("billing:purchase", args=["upgrade", "ultra"])).status_code == 303
    purchase = Purchase.objects.get(workspace=ws, kind="subscription")
    webhooks.hold_deliveries()
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.release_deliveries(order="reverse")
    webhooks.wait_for_deliveries()
    ws.refresh_from_db()
    ultra = Plan.objects.get(key="ultra")
    assert ws.plan == ultra and Subscription.objects.get(workspace=ws).status == "active"
    assert LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count() == 2  # Free, then Ultra once
    assert Wallet.objects.get(workspace=ws).plan_balance == ultra.allowance
    assert books_balanced()


@live
def test_a_second_subscription_checkout_is_refused_while_one_runs(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "pro")
    # The plan buttons now lead to the Billing Portal, where Stripe prorates changes.
    response = client.post(reverse("billing:purchase", args=["upgrade", "max"]))
    assert response.status_code == 303 and response["Location"].startswith(f"{webhooks.url}/portal/")
    from billing.errors import InvalidRequest
    from billing.services import plan_checkout_start

    with pytest.raises(InvalidRequest, match="already has a subscription"):
        plan_checkout_start(
            workspace=ws, plan_key="max", seats=1, user=owner, return_url="http://x/", cancel_url="http://x/"
        )
    assert Purchase.objects.filter(workspace=ws, kind="subscription").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("plan_key", "seats", "field"),
    [("free", 1, "plan"), ("pro", 0, "seats"), ("pro", 501, "seats"), ("gold", 1, "plan")],
)
def test_bad_plan_requests_name_what_was_wrong_and_write_nothing(stripe, plan_key, seats, field):
    from billing.errors import InvalidRequest
    from billing.services import plan_checkout_start

    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    with pytest.raises(InvalidRequest) as caught:
        plan_checkout_start(
            workspace=ws, plan_key=plan_key, seats=seats, user=owner, return_url="http://x/", cancel_url="http://x/"
        )
    assert caught.value.field == field
    assert not Purchase.objects.exists()
