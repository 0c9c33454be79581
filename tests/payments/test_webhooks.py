"""The webhook door itself: signatures, storage once, unknown types, failures that Stripe retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from django.urls import reverse

from billing.models import LedgerEntry, StripeEvent

SECRET = "whsec_webhook_tests"


@pytest.fixture
def signed(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_unused"
    settings.STRIPE_WEBHOOK_SECRET = SECRET

    def sign(event: dict, *, secret: str = SECRET, at: int | None = None) -> tuple[bytes, str]:
        body = json.dumps(event).encode()
        stamp = int(time.time()) if at is None else at
        digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return body, f"t={stamp},v1={digest}"

    return sign


def event(event_id: str = "evt_test_1", type_: str = "customer.created", obj: dict | None = None) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "data": {"object": obj or {"id": "cus_1", "object": "customer"}},
    }


def post(client, body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(reverse("stripe_webhook"), data=body, content_type="application/json", **headers)


@pytest.mark.django_db
def test_a_valid_signature_is_stored_once_and_unknown_types_answer_200(client, signed):
    body, signature = signed(event())
    first = post(client, body, signature)
    second = post(client, body, signature)
    assert first.status_code == second.status_code == 200
    row = StripeEvent.objects.get()
    assert (row.event_id, row.type, row.status) == ("evt_test_1", "customer.created", "ignored")
    assert first.json()["status"] == "ignored"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case",
    ["wrong secret", "no header", "stale timestamp", "tampered body", "garbage header"],
)
def test_a_bad_or_stale_signature_is_refused_and_writes_nothing(client, signed, case):
    payload = event(type_="checkout.session.completed", obj={"id": "cs_x", "object": "checkout.session"})
    body, signature = signed(payload)
    if case == "wrong secret":
        body, signature = signed(payload, secret="whsec_someone_else")
    elif case == "no header":
        signature = None
    elif case == "stale timestamp":
        body, signature = signed(payload, at=int(time.time()) - 3600)
    elif case == "tampered body":
        body = body.replace(b"cs_x", b"cs_y")
    else:
        signature = "t=abc,v1=nothex"
    response = post(client, body, signature)
    assert response.status_code == 400
    assert response.json()["code"] == "signature_invalid"
    assert not StripeEvent.objects.exists()
    assert not LedgerEntry.objects.filter(kind="top_up").exists()


@pytest.mark.django_db
def test_only_post_and_no_csrf_token_needed(client, signed):
    assert client.get(reverse("stripe_webhook")).status_code == 405
    body, signature = signed(event(event_id="evt_csrf"))
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post(strict, body, signature).status_code == 200


@pytest.mark.django_db
def test_without_a_webhook_secret_nothing_is_accepted(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = post(client, json.dumps(event()).encode(), "t=1,v1=00")
    assert response.status_code == 503
    assert not StripeEvent.objects.exists()


@pytest.mark.django_db
def test_a_handler_failure_answers_500_keeps_the_error_and_leaves_nothing_half_done(client, signed, settings):
    # A paid session whose purchase exists, while Stripe cannot be reached: the handler fails.
    from billing.models import Purchase, TopUpPack
    from tests.factories import WorkspaceFactory

    ws = WorkspaceFactory()
    pack = TopUpPack.objects.get(key="100k")
    purchase = Purchase.objects.create(
        workspace=ws,
        kind="top_up",
        pack=pack,
        amount_cents=pack.price_cents,
        credits=pack.amount,
        stripe_checkout_session_id="cs_unreachable",
    )
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    session = {
        "id": "cs_unreachable",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": pack.price_cents,
        "currency": "usd",
        "payment_intent": "pi_x",
        "mode": "payment",
        "metadata": {"workspace_id": str(ws.pk), "purchase_id": str(purchase.pk)},
    }
    body, signature = signed(event("evt_fail", "checkout.session.completed", session))
    response = post(client, body, signature)
    assert response.status_code == 500
    row = StripeEvent.objects.get(event_id="evt_fail")
    assert row.status == "failed" and "Stripe could not" in row.error and row.attempts == 1
    assert row.workspace_id == ws.pk
    purchase.refresh_from_db()
    assert purchase.status == "pending"
    assert not LedgerEntry.objects.filter(workspace=ws, kind="top_up").exists()
    # Stripe retries; still failing, still nothing written, the attempt counted.
    assert post(client, body, signature).status_code == 500
    assert StripeEvent.objects.get(event_id="evt_fail").attempts == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_while_the_database_cannot_be_reached_a_webhook_answers_503_and_its_retry_is_stored(signed):
    """PostgreSQL or PgBouncer restarting: 503 in JSON (it was Django's 500 page), so Stripe retries; the
    retry, once the database answers, stores the event. Through the WSGI application, connection and all."""
    from django.db import connection

    from bench.server import free_port
    from tests.api.test_wsgi import call

    body, signature = signed(event("evt_while_down"))
    headers = {"Stripe-Signature": signature}
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there: connection refused
    try:
        status, _, content = call("/stripe/webhook/", method="POST", body=body, headers=headers)
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()

    assert (status, json.loads(content)["code"]) == (503, "database_unavailable")
    assert call("/stripe/webhook/", method="POST", body=body, headers=headers)[0] == 200
    assert StripeEvent.objects.filter(event_id="evt_while_down").count() == 1
