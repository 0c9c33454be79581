"""The only module that talks to Stripe.

Everything else in billing calls these functions and gets plain dicts back, so no other module
imports ``stripe`` or depends on its object types. The API version is pinned here, once: the
shapes the fulfilment code reads (where a subscription's period lives, how an invoice names its
subscription) are those of this version.

With no real key configured in development, settings point ``STRIPE_API_BASE`` at the project's
offline double (``stripe_double``); the code path from here down is the same. A real
key always talks to Stripe itself: settings ignore ``STRIPE_API_BASE`` then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import stripe
from django.conf import settings

from billing.errors import (  # the refusals this module raises: callers may name them as gateway.<Error>
    MissingInStripe,
    PaymentFailed,
    PaymentsUnavailable,
    SignatureInvalid,
    StripeUnavailable,
)

logger = logging.getLogger(__name__)

API_VERSION = "2026-10-28.endive"  # the version stripe==16.1.0 speaks; bump both together
NETWORK_RETRIES = 2  # the library retries failed requests itself, safely: writes carry idempotency keys
WEBHOOK_TOLERANCE = 300  # seconds: an older signature is a replay, refused (Stripe's default)


def is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    if not is_configured():
        raise PaymentsUnavailable("Payments are not configured on this server (no STRIPE_SECRET_KEY).")
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE or "")


@lru_cache(maxsize=4)
def _client_for(api_key: str, api_base: str) -> stripe.StripeClient:
    addresses = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        api_key, stripe_version=API_VERSION, base_addresses=addresses, max_network_retries=NETWORK_RETRIES
    )


def _call(what: str, method: Any, params: dict[str, Any] | None = None, idempotency_key: str = "") -> dict[str, Any]:
    """Run one API call and turn the answer into a plain dict, or Stripe's refusal into ours."""
    options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
    try:
        result = method(params or {}, options) if options else method(params or {})
    except stripe.CardError as exc:
        intent = getattr(exc.error, "payment_intent", None) if exc.error else None
        raise PaymentFailed(
            exc.user_message or "The card was declined.",
            decline_code=exc.code or "card_declined",  # authentication_required for a card that needs its owner
            payment_intent=getattr(intent, "id", "") or "",
        ) from exc
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            raise MissingInStripe(f"Stripe could not {what}: {exc.user_message or exc}", param=exc.param or "") from exc
        logger.warning("stripe %s refused: %s", what, exc)
        raise StripeUnavailable(f"Stripe could not {what}: {exc.user_message or exc}") from exc
    except stripe.StripeError as exc:
        logger.warning("stripe %s failed: %s", what, exc)
        raise StripeUnavailable(f"Stripe could not {what}: {exc.user_message or exc}") from exc
    return result.to_dict()


def _retrieve(what: str, method: Any, object_id: str, expand: list[str] | None = None) -> dict[str, Any]:
    params = {"expand": expand} if expand else None
    try:
        result = method(object_id, params) if params else method(object_id)
    except stripe.StripeError as exc:
        logger.warning("stripe %s %s failed: %s", what, object_id, exc)
        raise StripeUnavailable(f"Stripe could not {what} {object_id}: {exc.user_message or exc}") from exc
    return result.to_dict()


# --- Customers, Checkout and the Billing Portal ---------------------------------------------------


def customer_create(*, email: str, name: str, metadata: dict[str, str], idempotency_key: str) -> dict[str, Any]:
    return _call(
        "create a customer",
        _client().v1.customers.create,
        {"email": email, "name": name, "metadata": metadata},
        idempotency_key,
    )


def customer_default_card_set(*, customer: str, payment_method: str) -> dict[str, Any]:
    """Make a card the customer's default, so off-session payments (auto top-up) can use it."""
    return _update(
        "save the card of customer",
        _client().v1.customers.update,
        customer,
        {"invoice_settings": {"default_payment_method": payment_method}},
    )


def customer_retrieve(customer_id: str, *, expand: list[str] | None = None) -> dict[str, Any]:
    """The customer as Stripe has it now (``{"deleted": true, …}`` once deleted)."""
    return _retrieve("find customer", _client().v1.customers.retrieve, customer_id, expand)


def customer_payment_methods(customer_id: str, *, limit: int = 1) -> list[dict[str, Any]]:
    """The customer's saved payment methods, newest first (at most ``limit``)."""
    client = _client()
    return _call(
        "list the payment methods of customer",
        lambda params: client.v1.customers.payment_methods.list(customer_id, params),
        {"limit": limit},
    )["data"]


def checkout_session_create(params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    return _call("start a checkout", _client().v1.checkout.sessions.create, params, idempotency_key)


def checkout_session_retrieve(session_id: str) -> dict[str, Any]:
    return _retrieve("find checkout session", _client().v1.checkout.sessions.retrieve, session_id)


def checkout_sessions_completed(*, since: int) -> Iterator[dict[str, Any]]:
    """Every completed Checkout Session created at or after ``since`` (unix time), all pages."""
    client = _client()
    params: dict[str, Any] = {"status": "complete", "created": {"gte": since}, "limit": 100}
    while True:
        page = _call("list checkout sessions", client.v1.checkout.sessions.list, params)
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        params = {**params, "starting_after": page["data"][-1]["id"]}


def portal_session_create(*, customer: str, return_url: str, flow_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Billing Portal session; ``flow_data`` deep-links it to one flow (a plan change's confirm page)."""
    params: dict[str, Any] = {"customer": customer, "return_url": return_url}
    if flow_data is not None:
        params["flow_data"] = flow_data
    return _call("open the billing portal", _client().v1.billing_portal.sessions.create, params)


# --- Reading current state (events are snapshots; order matters, so fetch) -----------------------


def subscription_retrieve(subscription_id: str) -> dict[str, Any]:
    return _retrieve("find subscription", _client().v1.subscriptions.retrieve, subscription_id)


def subscription_find(subscription_id: str) -> dict[str, Any] | None:
    """The subscription, or None when Stripe has no such subscription (Stripe keeps ended ones; the offline
    double forgets everything when it restarts)."""
    try:
        return _client().v1.subscriptions.retrieve(subscription_id).to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            return None
        raise StripeUnavailable(f"Stripe could not find subscription {subscription_id}: {exc.user_message}") from exc
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"Stripe could not find subscription {subscription_id}: {exc.user_message}") from exc


def invoice_retrieve(invoice_id: str) -> dict[str, Any]:
    return _retrieve("find invoice", _client().v1.invoices.retrieve, invoice_id)


def payment_intent_retrieve(payment_intent_id: str) -> dict[str, Any]:
    return _retrieve("find payment", _client().v1.payment_intents.retrieve, payment_intent_id)


def price_retrieve(price_id: str) -> dict[str, Any]:
    return _retrieve("find price", _client().v1.prices.retrieve, price_id)


def charge_retrieve(charge_id: str) -> dict[str, Any]:
    return _retrieve("find charge", _client().v1.charges.retrieve, charge_id)


def subscription_invoices(subscription_id: str) -> list[dict[str, Any]]:
    """Every invoice a subscription billed, all pages."""
    client, found = _client(), []
    params: dict[str, Any] = {"subscription": subscription_id, "limit": 100}
    while True:
        page = _call("list invoices", client.v1.invoices.list, params)
        found += page["data"]
        if not page.get("has_more") or not page["data"]:
            return found
        params = {**params, "starting_after": page["data"][-1]["id"]}


def charge_disputes(charge_id: str) -> list[dict[str, Any]]:
    """Every dispute of a charge, as it stands now (a charge is disputed once, but list them all)."""
    return _call("list disputes", _client().v1.disputes.list, {"charge": charge_id, "limit": 100})["data"]


# --- Off-session payments (auto top-up) ----------------------------------------------------------


def payment_intent_create_off_session(
    *, customer: str, amount_cents: int, currency: str, description: str, metadata: dict[str, str], idempotency_key: str
) -> dict[str, Any]:
    """Charge the customer's saved card now, without them present. Raises PaymentFailed if refused."""
    customer_obj = _retrieve("find customer", _client().v1.customers.retrieve, customer)
    method = (customer_obj.get("invoice_settings") or {}).get("default_payment_method")
    if not method:
        raise PaymentFailed("No saved card to charge.", decline_code="no_payment_method")
    return _call(
        "charge the saved card",
        _client().v1.payment_intents.create,
        {
            "amount": amount_cents,
            "currency": currency,
            "customer": customer,
            "payment_method": method,
            "off_session": True,
            "confirm": True,
            "description": description,
            "metadata": metadata,
        },
        idempotency_key,
    )


# --- The catalog (sync_stripe_catalog) ------------------------------------------------------------


def prices_by_lookup_key(keys: list[str]) -> dict[str, dict[str, Any]]:
    """The active price carrying each lookup key, with its product expanded."""
    found: dict[str, dict[str, Any]] = {}
    client = _client()
    for start in range(0, len(keys), 10):  # Stripe takes at most 10 lookup keys a call
        page = _call(
            "list prices",
            client.v1.prices.list,
            {"lookup_keys": keys[start : start + 10], "active": True, "limit": 100, "expand": ["data.product"]},
        )
        found.update({price["lookup_key"]: price for price in page["data"]})
    return found


def product_create(*, name: str, metadata: dict[str, str], idempotency_key: str) -> dict[str, Any]:
    return _call(
        "create a product", _client().v1.products.create, {"name": name, "metadata": metadata}, idempotency_key
    )


def _update(what: str, method: Any, object_id: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        result = method(object_id, params)
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"Stripe could not {what} {object_id}: {exc.user_message or exc}") from exc
    return result.to_dict()


def product_update(product_id: str, *, name: str, metadata: dict[str, str]) -> dict[str, Any]:
    return _update("update product", _client().v1.products.update, product_id, {"name": name, "metadata": metadata})


def price_create(params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    return _call("create a price", _client().v1.prices.create, params, idempotency_key)


def price_deactivate(price_id: str) -> dict[str, Any]:
    return _update("deactivate price", _client().v1.prices.update, price_id, {"active": False})


# --- Webhooks -------------------------------------------------------------------------------------


def event_construct(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event in a webhook body, once its ``Stripe-Signature`` proves Stripe sent it (and recently)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise PaymentsUnavailable("No STRIPE_WEBHOOK_SECRET is configured: webhooks cannot be verified.")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature or "", secret, tolerance=WEBHOOK_TOLERANCE
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise SignatureInvalid(f"The Stripe-Signature header does not verify: {exc}") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise SignatureInvalid("The webhook body is not JSON.") from exc
    if not isinstance(event, dict) or event.get("object") != "event" or not event.get("id"):
        raise SignatureInvalid("The webhook body is not a Stripe event.")
    return event


def hosted_page_origins() -> list[str]:
    """Where a purchase or the portal sends the browser: Stripe's hosted pages, or the offline double's.

    The page's Content-Security-Policy lets its forms lead there (``form-action``, sigora/csp.py):
    the purchase form's POST answers with a 303 to one of these, which the browser checks against it.
    """
    if settings.STRIPE_API_BASE:
        parts = urlsplit(settings.STRIPE_API_BASE)
        return [f"{parts.scheme}://{parts.netloc}"]
    return list(settings.STRIPE_HOSTED_ORIGINS)
