"""Top-ups through Stripe Checkout, end to end against the offline double over real HTTP.

The buyer clicks a pack, pays on the double's hosted page, Stripe's signed events arrive at the
real webhook view on the live test server, and the credits land exactly once.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from billing.models import LedgerEntry, Membership, Purchase, StripeEvent, TopUpPack, Wallet
from billing.selectors import ledger_audit
from tests.conftest import balances
from tests.factories import UserFactory, WorkspaceFactory

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def start_topup(client, user, pack_key="100k"):
    client.force_login(user)
    response = client.post(reverse("billing:purchase", args=["top-up", pack_key]))
    assert response.status_code == 303, response.content[:300]
    return response["Location"], Purchase.objects.filter(created_by=user).latest("id")


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


def topups(ws):
    return list(LedgerEntry.objects.filter(workspace=ws, kind="top_up"))


@live
def test_paying_on_the_test_checkout_grants_the_pack_exactly_once(client, webhooks, stripe_client):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    pack = TopUpPack.objects.get(key="100k")
    before = balances(ws)

    url, purchase = start_topup(client, owner)
    assert url == f"{webhooks.url}/checkout/{purchase.stripe_checkout_session_id}"
    assert purchase.status == "pending" and purchase.credits == pack.amount
    assert balances(ws) == before  # nothing before Stripe says the money is there

    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.wait_for_deliveries()

    assert balances(ws) == (before[0], before[1] + pack.amount)
    [entry] = topups(ws)
    assert entry.topup_delta == pack.amount and entry.external_ref == purchase.stripe_checkout_session_id
    assert entry.actor == owner
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.receipt_url.startswith(webhooks.url)
    assert purchase.stripe_payment_intent_id.startswith("pi_") and purchase.stripe_charge_id.startswith("ch_")
    # The card is saved as the customer's default, for auto top-ups later.
    ws.refresh_from_db()
    customer = stripe_client.v1.customers.retrieve(ws.stripe_customer_id)
    intent = stripe_client.v1.payment_intents.retrieve(purchase.stripe_payment_intent_id)
    assert customer.invoice_settings.default_payment_method == intent.payment_method
    completed = StripeEvent.objects.get(
        type="checkout.session.completed", object_id=purchase.stripe_checkout_session_id
    )
    assert completed.status == "processed" and completed.workspace_id == ws.pk

    # Landing back afterwards says so, and grants nothing more.
    response = client.get(
        reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}", follow=True
    )
    assert "Payment received: 100,000 credits added" in response.content.decode()
    assert len(topups(ws)) == 1
    assert books_balanced()


@live
def test_the_same_event_twenty_times_at_once_grants_once(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    _, purchase = start_topup(client, owner, "50k")
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.wait_for_deliveries()
    event_id = StripeEvent.objects.get(
        type="checkout.session.completed", object_id=purchase.stripe_checkout_session_id
    ).event_id

    webhooks.redeliver(event_id, times=20, concurrently=True)
    webhooks.wait_for_deliveries()

    answers = [d for d in webhooks.deliveries if d[0] == event_id]
    assert len(answers) == 21 and all(d[2] == 200 for d in answers)
    assert len(topups(ws)) == 1
    assert StripeEvent.objects.filter(event_id=event_id).count() == 1
    assert books_balanced()


@live
def test_events_in_reverse_order_still_grant_once(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    _, purchase = start_topup(client, owner, "500k")
    webhooks.hold_deliveries()
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.release_deliveries(order="reverse")
    webhooks.wait_for_deliveries()
    assert [e.topup_delta for e in topups(ws)] == [TopUpPack.objects.get(key="500k").amount]


@live
def test_a_declined_card_grants_nothing_and_the_buyer_can_retry(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    before = balances(ws)
    _, purchase = start_topup(client, owner)
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="decline")
    webhooks.wait_for_deliveries()
    assert balances(ws) == before
    purchase.refresh_from_db()
    assert purchase.status == "pending"
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.wait_for_deliveries()
    assert balances(ws)[1] == before[1] + purchase.credits


@live
@pytest.mark.parametrize("succeeds", [True, False])
def test_a_delayed_payment_shows_processing_until_it_settles(client, webhooks, succeeds):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    before = balances(ws)
    _, purchase = start_topup(client, owner)
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="delayed")
    webhooks.wait_for_deliveries()
    purchase.refresh_from_db()
    assert purchase.status == "processing" and balances(ws) == before
    assert Wallet.objects.get(workspace=ws).payments_processing == 1
    response = client.get(
        reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}", follow=True
    )
    assert "Payment processing" in response.content.decode()

    webhooks.settle_delayed(purchase.stripe_checkout_session_id, succeed=succeeds)
    webhooks.wait_for_deliveries()
    purchase.refresh_from_db()
    if succeeds:
        assert purchase.status == "paid" and balances(ws)[1] == before[1] + purchase.credits
    else:
        assert purchase.status == "failed" and balances(ws) == before
    assert Wallet.objects.get(workspace=ws).payments_processing == 0


@pytest.mark.django_db
def test_landing_back_fulfils_even_before_any_webhook(client, stripe):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    _, purchase = start_topup(client, owner)
    stripe.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    response = client.get(reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}")
    assert response.status_code == 302
    assert balances(ws)[1] == purchase.credits
    # The webhook that comes later finds it done.
    from billing.services.stripe_events import stripe_event_process, stripe_event_record

    [completed] = [
        e
        for e in stripe.events
        if e["type"] == "checkout.session.completed"
        and e["data"]["object"]["id"] == purchase.stripe_checkout_session_id
    ]
    stripe_event_process(event_id=stripe_event_record(event=completed).event_id)
    assert len(topups(ws)) == 1


@pytest.mark.django_db
def test_someone_elses_or_a_made_up_session_is_404_and_writes_nothing(client, stripe):
    owner, stranger = UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    WorkspaceFactory(owner=stranger)
    _, purchase = start_topup(client, owner)
    stripe.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    client.force_login(stranger)
    for session_id in (purchase.stripe_checkout_session_id, "cs_test_madeup", ""):
        response = client.get(reverse("billing:checkout_return") + f"?session_id={session_id}")
        assert response.status_code == 404
    assert topups(ws) == [] and Purchase.objects.get(pk=purchase.pk).status == "pending"


@pytest.mark.django_db
def test_members_cannot_buy_and_unknown_packs_are_404(client, stripe):
    owner, member = UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Membership.objects.create(workspace=ws, user=member, role="member")
    client.force_login(member)
    assert client.post(reverse("billing:purchase", args=["top-up", "100k"])).status_code == 403
    client.force_login(owner)
    assert client.post(reverse("billing:purchase", args=["top-up", "2m"])).status_code == 404
    assert client.post(reverse("billing:purchase", args=["refund", "100k"])).status_code == 404
    assert not Purchase.objects.exists()


@pytest.mark.django_db
def test_reconciliation_fulfils_a_paid_session_no_webhook_reached(client, stripe, capsys):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    _, purchase = start_topup(client, owner)
    stripe.pay_checkout(purchase.stripe_checkout_session_id, card="success")  # webhooks are off
    assert topups(ws) == []

    call_command("reconcile_payments")
    out = capsys.readouterr().out
    assert f"fulfilled {purchase.stripe_checkout_session_id}" in out
    assert len(topups(ws)) == 1
    call_command("reconcile_payments")
    assert "0 fulfilled" in capsys.readouterr().out
    assert len(topups(ws)) == 1


@pytest.mark.django_db
def test_without_stripe_configured_the_buttons_explain_instead_of_failing(client, settings):
    settings.STRIPE_SECRET_KEY = ""
    owner = UserFactory()
    WorkspaceFactory(owner=owner)
    client.force_login(owner)
    response = client.post(reverse("billing:purchase", args=["top-up", "100k"]))
    assert response.status_code == 200 and "Payments are not configured" in response.content.decode()
    assert not Purchase.objects.exists()


@pytest.mark.django_db
def test_the_reconciliation_job_is_on_the_schedule_and_fulfils(client, stripe):
    from billing.tasks import reconcile_payments
    from sigora.celery import app

    job = app.conf.beat_schedule["reconcile-payments"]
    assert job["task"] == reconcile_payments.name and job["schedule"].total_seconds() <= 15 * 60
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    _, purchase = start_topup(client, owner)
    stripe.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    result = reconcile_payments.delay().get()
    assert purchase.stripe_checkout_session_id in result["fulfilled"]
    assert len(topups(ws)) == 1
