"""Webhook delivery: Stripe's signature, background sending, retries, redelivery, order, the control surface."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
import stripe

from stripe_double import API_VERSION

from .conftest import API_KEY, SECRET, START


def verified(received) -> stripe.Event:
    return stripe.Webhook.construct_event(received.body, received.headers["Stripe-Signature"], SECRET)


def test_events_are_signed_so_the_library_verifies_them(client, double, receiver):
    customer = client.v1.customers.create({"email": "signed@example.com"})
    double.wait_for_deliveries()
    [received] = receiver.received
    event = verified(received)
    assert event.type == "customer.created"
    assert event.id.startswith("evt_")
    assert (event.object, event.api_version, event.livemode) == ("event", API_VERSION, False)
    assert event.created == START  # the double's clock; the signature itself carries wall-clock time
    assert event.pending_webhooks == 1
    assert event.data.object.id == customer.id
    assert received.headers["Content-Type"].startswith("application/json")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            received.body.replace(b"signed@", b"forged@"), received.headers["Stripe-Signature"], SECRET
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(received.body, received.headers["Stripe-Signature"], "whsec_other")


def test_an_event_carries_a_snapshot_of_its_moment(client, double, receiver):
    customer = client.v1.customers.create({"email": "before@example.com"})
    client.v1.customers.update(customer.id, {"email": "after@example.com"})
    double.wait_for_deliveries()
    created, updated = (verified(received) for received in receiver.received)
    assert created.data.object.email == "before@example.com"
    assert updated.data.object.email == "after@example.com"
    assert updated.data.previous_attributes.email == "before@example.com"


def test_delivery_never_blocks_the_call_that_caused_it(client, double, receiver):
    receiver.gate = threading.Event()
    customer = client.v1.customers.create({"email": "quick@example.com"})  # answers while the receiver hangs
    assert customer.id.startswith("cus_")
    assert receiver.received == []
    receiver.gate.set()
    double.wait_for_deliveries()
    assert receiver.types() == ["customer.created"]


def test_a_failed_delivery_is_retried_when_the_clock_reaches_it(client, double, receiver):
    receiver.fail_next(1, status=500)
    client.v1.customers.create({"email": "retry@example.com"})
    double.wait_for_deliveries()  # does not wait for the retry due in a second
    [event] = double.events
    assert double.deliveries == [(event["id"], "customer.created", 500, 1)]
    assert double.scheduled() == [(event["id"], 2, START + 1)]
    assert client.v1.events.retrieve(event["id"]).pending_webhooks == 1

    double.advance(1)
    double.wait_for_deliveries()
    assert double.deliveries[-1] == (event["id"], "customer.created", 200, 2)
    assert [verified(received).id for received in receiver.received] == [event["id"], event["id"]]
    assert double.scheduled() == []
    assert client.v1.events.retrieve(event["id"]).pending_webhooks == 0


def test_retries_follow_the_delays_then_stop(client, double, receiver):
    receiver.fail_next(10, status=503)
    client.v1.customers.create({"email": "down@example.com"})
    double.wait_for_deliveries()
    for delay in (1, 5, 30):
        double.advance(delay - 1)
        double.wait_for_deliveries()
        attempts = len(double.deliveries)
        double.advance(1)
        double.wait_for_deliveries()
        assert len(double.deliveries) == attempts + 1
    assert [delivery.attempt for delivery in double.deliveries] == [1, 2, 3, 4]
    assert {delivery.result for delivery in double.deliveries} == {503}
    assert double.scheduled() == []


def test_deliver_due_can_force_a_scheduled_retry(client, double, receiver):
    receiver.fail_next(1)
    client.v1.customers.create({"email": "force@example.com"})
    double.wait_for_deliveries()
    double.deliver_due()
    assert len(double.deliveries) == 1
    double.deliver_due(force=True)
    assert double.deliveries[-1].result == 200


def test_a_connection_error_is_recorded_and_retried_while_the_endpoint_stays(client, double, receiver):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    double.webhook_url = f"http://127.0.0.1:{closed}/hook/"
    client.v1.customers.create({"email": "nobody@example.com"})
    double.wait_for_deliveries()
    [delivery] = double.deliveries
    assert isinstance(delivery.result, str)
    assert "Connection" in delivery.result
    assert len(double.scheduled()) == 1

    double.webhook_url = receiver.url  # a new endpoint does not inherit the old one's retries
    double.advance(60)
    double.wait_for_deliveries()
    assert receiver.received == []
    assert double.scheduled() == []
    assert len(double.deliveries) == 1


def test_without_a_webhook_url_nothing_is_sent_until_one_is_set(client, double, receiver):
    url, double.webhook_url = double.webhook_url, None
    client.v1.customers.create({"email": "quiet@example.com"})
    double.wait_for_deliveries()
    assert receiver.received == []
    assert double.events[0]["pending_webhooks"] == 0
    double.webhook_url = url
    client.v1.customers.create({"email": "loud@example.com"})
    double.wait_for_deliveries()
    assert receiver.types() == ["customer.created"]


def test_redeliver_sends_the_same_event_again_concurrently(client, double, receiver):
    client.v1.customers.create({"email": "twice@example.com"})
    double.wait_for_deliveries()
    [event] = double.events
    receiver.received.clear()
    receiver.barrier = threading.Barrier(5)  # answers 200 only when all five are in flight together
    results = double.redeliver(event["id"], times=5, concurrently=True)
    assert results == [200] * 5
    assert [verified(received).id for received in receiver.received] == [event["id"]] * 5
    assert sorted(delivery.attempt for delivery in double.deliveries) == [1, 2, 3, 4, 5, 6]


def test_redeliver_one_after_another(client, double, receiver):
    client.v1.customers.create({"email": "again@example.com"})
    double.wait_for_deliveries()
    [event] = double.events
    assert double.redeliver(event["id"], times=2) == [200, 200]
    assert len(receiver.received) == 3


def test_held_deliveries_can_be_released_in_reverse(client, double, receiver):
    double.hold_deliveries()
    ids = [client.v1.customers.create({"email": f"r{n}@example.com"}).id for n in range(3)]
    double.wait_for_deliveries()  # held deliveries are not waited for
    assert receiver.received == []
    double.release_deliveries(order="reverse")
    double.wait_for_deliveries()
    assert [verified(received).data.object.id for received in receiver.received] == list(reversed(ids))


def test_held_deliveries_can_be_released_as_they_were(client, double, receiver):
    double.hold_deliveries()
    ids = [client.v1.customers.create({"email": f"a{n}@example.com"}).id for n in range(3)]
    double.release_deliveries()
    double.wait_for_deliveries()
    assert [verified(received).data.object.id for received in receiver.received] == ids


# --- the HTTP control surface -----------------------------------------------------------------------


def control(double, method, name, payload=None, key=API_KEY, form=None):
    data = json.dumps(payload).encode() if payload is not None else None
    if form is not None:
        data = form.encode()
    request = urllib.request.Request(f"{double.url}/_double/{name}", data=data, method=method)
    if payload is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_control_surface_over_http(client, double, catalog, receiver):
    session = client.v1.checkout.sessions.create(
        {"mode": "payment", "line_items": [{"price": catalog.pack.id, "quantity": 1}]}
    )
    status, answer = control(double, "POST", "pay_checkout", {"session_id": session.id, "card": "success"})
    assert status == 200
    assert answer["result"]["status"] == "complete"
    assert control(double, "POST", "advance", form="seconds=60") == (200, {"result": START + 60})
    assert control(double, "GET", "now") == (200, START + 60)
    assert control(double, "POST", "wait_for_deliveries", {})[0] == 200
    status, deliveries = control(double, "GET", "deliveries")
    assert status == 200
    assert {"event_type": "checkout.session.completed", "result": 200, "attempt": 1}.items() <= deliveries[-1].items()
    assert control(double, "GET", "now", key=None)[0] == 401
    assert control(double, "POST", "explode", {})[0] == 404
    assert control(double, "POST", "pay_checkout", {"session_id": session.id, "card": "plastic"})[0] == 400
    status, refused = control(double, "POST", "pay_checkout", {"session_id": session.id})
    assert status == 400
    assert "complete" in refused["error"]["message"]
