"""Off-session PaymentIntents, refunds and disputes through the real library."""

from __future__ import annotations

import pytest
import stripe

from stripe_double import StripeError

from .conftest import event_types
from .test_webhooks import control


@pytest.fixture
def saved_card(double, customer):
    [method] = double.set_card(customer.id, "success")
    return method["id"]


def charge_off_session(client, customer, method, key="auto-top-up:1", amount=2000):
    return client.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method,
            "off_session": True,
            "confirm": True,
            "metadata": {"purchase": "42"},
            "description": "Auto top-up",
        },
        {"idempotency_key": key},
    )


def test_an_off_session_charge_on_a_good_card_succeeds(client, double, customer, saved_card):
    intent = charge_off_session(client, customer, saved_card)
    assert intent.id.startswith("pi_")
    assert (intent.status, intent.amount_received, intent.payment_method) == ("succeeded", 2000, saved_card)
    assert intent.metadata.to_dict() == {"purchase": "42"}
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.amount, charge.customer, charge.payment_intent) == (
        "succeeded",
        2000,
        customer.id,
        intent.id,
    )
    assert charge.receipt_url.endswith(f"/receipts/{charge.id}")
    assert charge.payment_method_details.card.last4 == "4242"
    types = event_types(double)
    assert types.index("payment_intent.succeeded") < types.index("charge.succeeded")


def test_the_customer_default_card_is_used_when_none_is_named(client, customer, saved_card):
    intent = client.v1.payment_intents.create(
        {"amount": 500, "currency": "usd", "customer": customer.id, "off_session": True, "confirm": True}
    )
    assert (intent.status, intent.payment_method) == ("succeeded", saved_card)


def test_a_retried_charge_with_the_same_key_is_charged_once(client, double, customer, saved_card):
    first = charge_off_session(client, customer, saved_card, key="auto-top-up:7")
    again = charge_off_session(client, customer, saved_card, key="auto-top-up:7")
    assert first.id == again.id
    assert len(client.v1.charges.list({"customer": customer.id}).data) == 1
    with pytest.raises(stripe.IdempotencyError):
        charge_off_session(client, customer, saved_card, key="auto-top-up:7", amount=3000)


def test_a_declined_card_answers_402_with_the_intent(client, double, customer, saved_card):
    double.set_card(customer.id, "decline")
    with pytest.raises(stripe.CardError) as caught:
        charge_off_session(client, customer, saved_card)
    error = caught.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == "generic_decline"
    intent = error.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"
    assert client.v1.charges.retrieve(intent.latest_charge).status == "failed"
    assert "payment_intent.payment_failed" in event_types(double)
    assert "payment_intent.succeeded" not in event_types(double)


def test_a_declined_charge_is_replayed_for_the_same_key(client, double, customer, saved_card):
    double.set_card(customer.id, "decline")
    with pytest.raises(stripe.CardError) as first:
        charge_off_session(client, customer, saved_card, key="auto-top-up:9")
    double.set_card(customer.id, "success")
    with pytest.raises(stripe.CardError) as again:
        charge_off_session(client, customer, saved_card, key="auto-top-up:9")
    assert first.value.error.payment_intent.id == again.value.error.payment_intent.id


def test_a_card_needing_authentication_off_session_is_refused_and_can_be_authenticated(
    client, double, customer, saved_card
):
    double.set_card(customer.id, "authenticate")
    with pytest.raises(stripe.CardError) as caught:
        charge_off_session(client, customer, saved_card)
    assert caught.value.code == "authentication_required"
    intent = caught.value.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert "payment_intent.payment_failed" in event_types(double)


def test_an_on_session_intent_waits_for_authentication(client, double, customer, saved_card):
    double.set_card(customer.id, "authenticate")
    intent = client.v1.payment_intents.create(
        {"amount": 900, "currency": "usd", "customer": customer.id, "payment_method": saved_card, "confirm": True}
    )
    assert intent.status == "requires_action"
    assert intent.next_action.type == "use_stripe_sdk"
    double.complete_authentication(intent.id, succeed=True)
    assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"


def test_an_intent_without_a_payment_method_cannot_be_confirmed(client, customer):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            {"amount": 500, "currency": "usd", "customer": customer.id, "off_session": True, "confirm": True}
        )
    assert caught.value.param == "payment_method"


def test_test_payment_method_shortcuts_work(client):
    intent = client.v1.payment_intents.create(
        {"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert intent.status == "succeeded"
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            {"amount": 500, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )


def test_too_small_an_amount_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create({"amount": 10, "currency": "usd"})
    assert caught.value.code == "amount_too_small"


def test_intents_list_by_customer(client, customer, saved_card):
    first = charge_off_session(client, customer, saved_card, key="k1")
    second = charge_off_session(client, customer, saved_card, key="k2")
    assert [i.id for i in client.v1.payment_intents.list({"customer": customer.id}).data] == [second.id, first.id]


# --- refunds ---------------------------------------------------------------------------------------


def test_partial_then_full_refunds_then_no_more(client, double, customer, saved_card, browser):
    intent = charge_off_session(client, customer, saved_card, amount=5000)
    partial = client.v1.refunds.create({"payment_intent": intent.id, "amount": 2000, "metadata": {"why": "test"}})
    assert partial.id.startswith("re_")
    assert (partial.status, partial.amount, partial.charge) == ("succeeded", 2000, intent.latest_charge)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (2000, False)
    refunded_event = next(e for e in double.events if e["type"] == "charge.refunded")
    assert refunded_event["data"]["object"]["amount_refunded"] == 2000
    assert refunded_event["data"]["previous_attributes"] == {"amount_refunded": 0}

    rest = client.v1.refunds.create({"charge": charge.id})
    assert rest.amount == 3000
    charge = client.v1.charges.retrieve(charge.id)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    assert event_types(double).count("refund.created") == 2
    assert "$50.00" in browser.get(charge.receipt_url).text  # the receipt shows the refund too

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create({"charge": charge.id, "amount": 1})
    assert caught.value.code == "charge_already_refunded"
    assert [r.id for r in client.v1.refunds.list({"charge": charge.id}).data] == [rest.id, partial.id]


def test_a_refund_larger_than_what_remains_is_refused(client, customer, saved_card):
    intent = charge_off_session(client, customer, saved_card, amount=1000)
    client.v1.refunds.create({"payment_intent": intent.id, "amount": 600})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 500})
    assert (caught.value.http_status, caught.value.param, caught.value.code) == (400, "amount", "amount_too_large")
    assert client.v1.charges.retrieve(intent.latest_charge).amount_refunded == 600


def test_a_refund_needs_a_charge_or_intent(client):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create({"amount": 100})


# --- disputes --------------------------------------------------------------------------------------


def test_a_dispute_is_opened_on_a_charge(client, double, customer, saved_card):
    intent = charge_off_session(client, customer, saved_card, amount=3000)
    dispute = double.dispute(intent.latest_charge)
    assert dispute["id"].startswith("dp_")
    assert (dispute["amount"], dispute["status"], dispute["charge"]) == (3000, "needs_response", intent.latest_charge)
    event = double.events[-1]
    assert event["type"] == "charge.dispute.created"
    assert event["data"]["object"]["id"] == dispute["id"]
    assert client.v1.charges.retrieve(intent.latest_charge).disputed is True
    assert client.v1.disputes.retrieve(dispute["id"]).payment_intent == intent.id


def test_a_dispute_is_won_with_evidence(client, double, customer, saved_card):
    intent = charge_off_session(client, customer, saved_card, amount=3000)
    dispute = double.dispute(intent.latest_charge)
    before = len(double.events)
    won = double.close_dispute(dispute["id"], won=True)
    assert (won["status"], won["evidence_details"]["submission_count"]) == ("won", 1)
    assert event_types(double, before) == ["charge.dispute.updated", "charge.dispute.closed"]
    updated, closed = double.events[before:]
    assert updated["data"]["previous_attributes"]["status"] == "needs_response"
    assert closed["data"]["object"]["status"] == "won"
    assert client.v1.disputes.retrieve(dispute["id"]).status == "won"
    assert client.v1.charges.retrieve(intent.latest_charge).disputed is True


def test_a_dispute_is_lost_and_stays_closed(client, double, customer, saved_card):
    intent = charge_off_session(client, customer, saved_card, amount=3000)
    dispute = double.dispute(intent.latest_charge)
    before = len(double.events)
    status, answer = control(double, "POST", "close_dispute", form=f"dispute_id={dispute['id']}&won=false")
    assert (status, answer["result"]["status"]) == (200, "lost")
    assert event_types(double, before) == ["charge.dispute.closed"]
    assert client.v1.disputes.retrieve(dispute["id"]).status == "lost"
    with pytest.raises(StripeError) as caught:
        double.close_dispute(dispute["id"], won=True)
    assert caught.value.status == 400
