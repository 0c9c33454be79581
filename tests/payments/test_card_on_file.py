"""The payment method on file: recorded from what Stripe tells fulfilment and the webhooks, newest report wins.

Against the offline double over real HTTP: a Checkout's card (fulfilment makes it the default), a bank
debit, an off-session auto top-up, a subscription's card (kept on the subscription, not the customer),
and a card changed in the portal (``payment_method.attached`` then ``customer.updated``), in either order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from billing.credits import credits
from billing.models import Purchase, StripeEvent, Workspace
from billing.services.auto_topup import auto_topup_set, auto_topups_run
from billing.services.cards import PaymentMethodDetails, payment_method_paid_with, payment_method_record
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory
from tests.payments.test_subscriptions import subscribe

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def on_file(ws) -> tuple:
    ws = Workspace.objects.get(pk=ws.pk)
    return (
        ws.payment_method_id,
        ws.payment_method_type,
        ws.payment_method_brand,
        ws.payment_method_last4,
        ws.payment_method_exp_month,
        ws.payment_method_exp_year,
    )


def buy(client, double, owner, ws, pack="50k", card="success") -> Purchase:
    client.force_login(owner)
    assert client.post(reverse("billing:purchase", args=["top-up", pack])).status_code == 303
    purchase = Purchase.objects.filter(workspace=ws).latest("id")
    double.pay_checkout(purchase.stripe_checkout_session_id, card=card)
    return purchase


@pytest.mark.django_db
def test_a_paid_checkout_puts_its_card_on_file_with_no_webhook(client, stripe, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    assert on_file(ws) == ("", "", "", "", None, None)
    purchase = buy(client, stripe, owner, ws)
    client.get(reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}")
    purchase.refresh_from_db()
    method = stripe_client.v1.payment_intents.retrieve(purchase.stripe_payment_intent_id).payment_method
    assert on_file(ws) == (method, "card", "visa", "4242", 12, 2034)


@pytest.mark.django_db
def test_a_bank_debit_is_on_file_as_its_bank_and_last_four(client, stripe):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    purchase = buy(client, stripe, owner, ws, card="delayed")
    stripe.settle_delayed(purchase.stripe_checkout_session_id, succeed=True)
    client.get(reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}")
    assert on_file(ws)[1:] == ("us_bank_account", "STRIPE TEST BANK", "6789", None, None)


@pytest.mark.django_db
def test_an_off_session_payment_fills_an_empty_record_from_its_charge(client, stripe):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    purchase = buy(client, stripe, owner, ws)
    client.get(reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}")
    recorded = on_file(ws)
    Workspace.objects.filter(pk=ws.pk).update(
        payment_method_id="", payment_method_type="", payment_method_last4="", payment_method_as_of=None
    )
    ws.refresh_from_db()
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(20_000), pack_key="50k", monthly_limit=1)
    fund(ws, plan=0, topup=1_000)
    assert auto_topups_run().credited == [ws.pk]
    assert on_file(ws) == recorded  # the default it charged


@live
def test_a_card_changed_in_the_portal_replaces_it_whatever_order_the_events_come_in(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    buy(client, webhooks, owner, ws)
    webhooks.wait_for_deliveries()
    assert on_file(ws)[3] == "4242"
    customer = Workspace.objects.get(pk=ws.pk).stripe_customer_id

    # What the portal does when the card is replaced: a new method attached, then made the default.
    webhooks.hold_deliveries()
    method = stripe_client.v1.payment_methods.create({"type": "card", "card": {"token": "tok_chargeDeclined"}})
    stripe_client.v1.payment_methods.attach(method.id, {"customer": customer})
    stripe_client.v1.customers.update(customer, {"invoice_settings": {"default_payment_method": method.id}})
    webhooks.release_deliveries(order="reverse")
    webhooks.wait_for_deliveries()

    assert on_file(ws) == (method.id, "card", "visa", "0002", 12, 2034)
    handled = StripeEvent.objects.filter(type__in=["customer.updated", "payment_method.attached"], workspace=ws)
    assert handled.exists() and {event.status for event in handled} == {"processed"}


@live
def test_a_subscriptions_card_is_on_file_though_the_customer_has_no_default(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "max")
    customer = stripe_client.v1.customers.retrieve(Workspace.objects.get(pk=ws.pk).stripe_customer_id)
    assert customer.invoice_settings.default_payment_method is None  # Checkout put it on the subscription
    assert on_file(ws)[1:] == ("card", "visa", "4242", 12, 2034)


CARD_A = PaymentMethodDetails(id="pm_a", type="card", brand="visa", last4="4242", exp_month=12, exp_year=2034)
CARD_B = PaymentMethodDetails(id="pm_b", type="card", brand="mastercard", last4="4444", exp_month=1, exp_year=2030)


def customer_workspace() -> Workspace:
    ws = WorkspaceFactory()
    Workspace.objects.filter(pk=ws.pk).update(stripe_customer_id=f"cus_cards_{ws.pk}")
    return Workspace.objects.get(pk=ws.pk)


@pytest.mark.django_db
def test_an_older_report_never_replaces_a_newer_one():
    ws = customer_workspace()
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert payment_method_record(customer_id=ws.stripe_customer_id, details=CARD_B, as_of=now)
    assert not payment_method_record(customer_id=ws.stripe_customer_id, details=CARD_A, as_of=now - timedelta(1))
    assert on_file(ws)[:4] == ("pm_b", "card", "mastercard", "4444")
    assert payment_method_record(customer_id=ws.stripe_customer_id, details=None, as_of=now + timedelta(1))
    assert on_file(ws) == ("", "", "", "", None, None)  # Stripe says there is none now


def charge_with(details: PaymentMethodDetails) -> dict:
    card = {
        "brand": details.brand,
        "last4": details.last4,
        "exp_month": details.exp_month,
        "exp_year": details.exp_year,
    }
    return {"id": "ch_x", "payment_method": details.id, "payment_method_details": {"type": "card", "card": card}}


@pytest.mark.django_db
def test_an_off_session_charge_only_refreshes_the_same_card():
    ws = customer_workspace()
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    payment_method_record(customer_id=ws.stripe_customer_id, details=CARD_A, as_of=now)
    # Charged with another card (the default changed after the charge was made): the newer card stays.
    assert not payment_method_paid_with(
        customer_id=ws.stripe_customer_id, charge=charge_with(CARD_B), made_default=False, as_of=now + timedelta(1)
    )
    assert on_file(ws)[0] == "pm_a"
    # The same card with a new expiry (the card network updated it): refreshed.
    renewed = PaymentMethodDetails(id="pm_a", type="card", brand="visa", last4="4242", exp_month=3, exp_year=2038)
    assert payment_method_paid_with(
        customer_id=ws.stripe_customer_id, charge=charge_with(renewed), made_default=False, as_of=now + timedelta(1)
    )
    assert on_file(ws)[4:] == (3, 2038)
    # A Checkout that made another card the default replaces it.
    assert payment_method_paid_with(
        customer_id=ws.stripe_customer_id, charge=charge_with(CARD_B), made_default=True, as_of=now + timedelta(2)
    )
    assert on_file(ws)[0] == "pm_b"
