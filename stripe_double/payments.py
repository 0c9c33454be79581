"""PaymentIntents and charges: a payment attempt plays out as its payment method says.

Whoever made an intent for a purpose (a Checkout Session, an invoice) is told of each outcome through
``on_outcome``, whether it came at once or later (an authentication finished, a bank debit settled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .customers import default_payment_method, payment_method_attach_to, payment_method_resolve
from .encoding import Params, as_bool, as_dict, as_int, as_str, assign, merge_metadata
from .errors import StripeError, invalid, missing, refused
from .routing import retrieve_and_list, route
from .store import Obj, Store

# purpose kind -> handler(store, target id, intent, outcome); an intent may serve several purposes
on_outcome: dict[str, Callable[[Store, str, Obj, str], None]] = {}
OUTCOMES = ("succeeded", "failed", "requires_action", "processing")

_MINIMUM = {"usd": 50, "eur": 50, "gbp": 30}
_DECLINES = {
    "decline": ("card_declined", "generic_decline", "Your card was declined."),
    "authenticate": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
    "delayed": ("insufficient_funds", "insufficient_funds", "The bank account has insufficient funds."),
}


def intent_new(
    store: Store,
    *,
    amount: int,
    currency: str,
    customer: str | None,
    metadata: Obj | None = None,
    description: str | None = None,
    setup_future_usage: str | None = None,
    purposes: list[tuple[str, str]] | None = None,
    **extra: Any,
) -> Obj:
    minimum = _MINIMUM.get(currency, 1)
    if amount < minimum:
        raise invalid(f"Amount must be at least {minimum} {currency} cents", param="amount", code="amount_too_small")
    intent_id = store.new_id("pi_")
    intent = store.add(
        {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{store.new_id('', 25)}",
            "confirmation_method": "automatic",
            "created": store.now(),
            "currency": currency,
            "customer": customer,
            "description": description,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata or {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": setup_future_usage,
            "shipping": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
            "_purposes": purposes or [],
        }
    )
    intent.update(extra)
    store.emit("payment_intent.created", intent)
    return intent


def intent_attempt(store: Store, intent: Obj, method: Obj, *, off_session: bool, behaviour: str | None = None) -> str:
    """Confirm ``intent`` with ``method`` (behaving as ``behaviour`` if given, else as the method says).

    Returns the outcome, after telling the intent's purposes.
    """
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise refused(
            f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
            code="payment_intent_unexpected_state",
        )
    intent["payment_method"] = method["id"]
    intent["payment_method_types"] = [method["type"]]
    intent["last_payment_error"] = None
    behaviour = behaviour or method["_behaviour"]
    if behaviour == "success":
        _succeed(store, intent, _charge_new(store, intent, method, "succeeded"))
    elif behaviour == "delayed":
        intent["status"] = "processing"  # ``processing`` stays null: Stripe fills it in for cards only
        charge = _charge_new(store, intent, method, "pending")
        store.emit("payment_intent.processing", intent)
        store.emit("charge.pending", charge)
        _tell(store, intent, "processing")
    elif behaviour == "authenticate" and not off_session:
        intent["status"] = "requires_action"
        intent["next_action"] = {
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": f"{store.base_url}/"},
        }
        store.emit("payment_intent.requires_action", intent)
        _tell(store, intent, "requires_action")
    else:
        _decline(store, intent, method, *_DECLINES[behaviour])
    return _outcome(intent)


def intent_authenticate(store: Store, intent: Obj, *, succeed: bool) -> Obj:
    """The customer finishes (or fails) the authentication an on-session payment asked for."""
    if intent["status"] != "requires_action":
        raise refused(f"PaymentIntent {intent['id']} is {intent['status']}: there is no authentication to finish.")
    intent["next_action"] = None
    method = store.get(intent["payment_method"], "payment_method")
    if succeed:
        _succeed(store, intent, _charge_new(store, intent, method, "succeeded"))
        return intent
    intent["status"] = "requires_payment_method"
    intent["payment_method"] = None
    intent["last_payment_error"] = {
        "code": "payment_intent_authentication_failure",
        "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
        "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or "
        "a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
        "payment_method": store.render(method),
        "type": "invalid_request_error",
    }
    store.emit("payment_intent.payment_failed", intent)
    _tell(store, intent, "failed")
    return intent


def intent_settle(store: Store, intent: Obj, *, succeed: bool) -> Obj:
    """A bank debit that was processing clears or bounces."""
    if intent["status"] != "processing":
        raise refused(f"PaymentIntent {intent['id']} is {intent['status']}, not processing.")
    charge = store.get(intent["latest_charge"], "charge")
    method = store.get(intent["payment_method"], "payment_method")
    if succeed:
        charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
        charge["outcome"] = _outcome_details("succeeded")
        _succeed(store, intent, charge)
    else:
        _decline(store, intent, method, *_DECLINES["delayed"], charge=charge)
    return intent


def _succeed(store: Store, intent: Obj, charge: Obj) -> None:
    intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
    customer = store.find(intent["customer"])
    if intent["setup_future_usage"] and customer:
        payment_method_attach_to(store, store.get(intent["payment_method"], "payment_method"), customer)
    store.emit("payment_intent.succeeded", intent)
    store.emit("charge.succeeded", charge)
    _tell(store, intent, "succeeded")


def _decline(
    store: Store, intent: Obj, method: Obj, code: str, decline_code: str, message: str, charge: Obj | None = None
) -> None:
    if charge is None:
        charge = _charge_new(store, intent, method, "failed")
    charge.update(status="failed", paid=False, failure_code=code, failure_message=message)
    charge["outcome"] = _outcome_details("failed", decline_code)
    intent.update(status="requires_payment_method", payment_method=None, latest_charge=charge["id"])
    intent["last_payment_error"] = {
        "charge": charge["id"],
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": message,
        "payment_method": store.render(method),
        "type": "card_error",
    }
    store.emit("charge.failed", charge)
    store.emit("payment_intent.payment_failed", intent)
    _tell(store, intent, "failed")


def _outcome(intent: Obj) -> str:
    return {"succeeded": "succeeded", "processing": "processing", "requires_action": "requires_action"}.get(
        intent["status"], "failed"
    )


def _tell(store: Store, intent: Obj, outcome: str) -> None:
    for kind, target in list(intent["_purposes"]):
        on_outcome[kind](store, target, intent, outcome)


def card_error(store: Store, intent: Obj) -> StripeError:
    """The 402 a failed confirmation answers, carrying the intent as Stripe's error does."""
    error = dict(intent["last_payment_error"])
    error.pop("type")
    return StripeError(
        402,
        "card_error",
        error.pop("message"),
        code=error.pop("code"),
        payment_intent=store.render(intent),
        **{key: value for key, value in error.items() if key != "doc_url"},
    )


# --- charges ----------------------------------------------------------------------------------------


def _charge_new(store: Store, intent: Obj, method: Obj, status: str) -> Obj:
    charge_id = store.new_id("ch_")
    details: Obj = {"type": method["type"], method["type"]: _method_details(method)}
    succeeded = status == "succeeded"
    charge = store.add(
        {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": store.new_id("txn_") if status != "failed" else None,
            "billing_details": method["billing_details"],
            "calculated_statement_descriptor": "SIGORA TEST",
            "captured": succeeded,
            "created": store.now(),
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "fraud_details": {},
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "on_behalf_of": None,
            "outcome": _outcome_details(status),
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": method["id"],
            "payment_method_details": details,
            "radar_options": {},
            "receipt_email": intent["receipt_email"],
            "receipt_number": None,
            "receipt_url": f"{store.base_url}/receipts/{charge_id}",
            "refunded": False,
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        }
    )
    intent["latest_charge"] = charge_id
    return charge


def _method_details(method: Obj) -> Obj:
    if method["type"] == "card":
        card = method["card"]
        keys = ("brand", "country", "exp_month", "exp_year", "fingerprint", "funding", "last4", "network")
        return {key: card.get(key, "visa") for key in keys}
    account = method["us_bank_account"]
    return {key: account[key] for key in ("account_holder_type", "account_type", "bank_name", "last4")}


def _outcome_details(status: str, reason: str | None = None) -> Obj:
    if status == "failed":
        return {
            "network_status": "declined_by_network",
            "reason": reason,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "seller_message": "Payment complete.",
        "type": "authorized",
    }


# --- the PaymentIntents API -------------------------------------------------------------------------


@route("POST", "/v1/payment_intents")
def intent_create(store: Store, params: Params) -> Obj:
    customer = as_str(params, "customer")
    if customer:
        store.get(customer, "customer", param="customer")
    currency = (as_str(params, "currency", required=True) or "").lower()
    method_id = as_str(params, "payment_method")
    method = payment_method_resolve(store, method_id) if method_id else None
    automatic = as_dict(params, "automatic_payment_methods").get("enabled") == "true"
    intent = intent_new(
        store,
        amount=as_int(params, "amount", required=True) or 0,
        currency=currency,
        customer=customer,
        metadata=merge_metadata({}, params.get("metadata", {})),
        description=as_str(params, "description"),
        setup_future_usage=as_str(params, "setup_future_usage"),
        receipt_email=as_str(params, "receipt_email"),
        statement_descriptor_suffix=as_str(params, "statement_descriptor_suffix"),
        automatic_payment_methods={"allow_redirects": "always", "enabled": True} if automatic else None,
        payment_method=method["id"] if method else None,
        status="requires_confirmation" if method else "requires_payment_method",
    )
    if as_bool(params, "confirm"):
        return _confirm(store, intent, params)
    if params.get("off_session") not in (None, ""):
        raise invalid("You can only pass `off_session` when `confirm` is true.", param="off_session")
    return intent


@route("POST", "/v1/payment_intents/{id}/confirm")
def intent_confirm(store: Store, params: Params, intent_id: str) -> Obj:
    return _confirm(store, store.get(intent_id, "payment_intent", label="payment_intent"), params)


def _confirm(store: Store, intent: Obj, params: Params) -> Obj:
    method_id = as_str(params, "payment_method")
    if method_id:
        method = payment_method_resolve(store, method_id)
    else:
        method = default_payment_method(store, intent["customer"], intent["payment_method"])
    if method is None:
        raise missing("payment_method")
    customer = store.find(intent["customer"])
    if method["customer"] is not None and customer is not None and method["customer"] != customer["id"]:
        raise invalid(f"The provided PaymentMethod {method['id']} belongs to another customer.", param="payment_method")
    off_session = params.get("off_session") not in (None, "", "false")
    outcome = intent_attempt(store, intent, method, off_session=off_session)
    if outcome == "failed":
        raise card_error(store, intent)
    return intent


@route("POST", "/v1/payment_intents/{id}/cancel")
def intent_cancel(store: Store, params: Params, intent_id: str) -> Obj:
    intent = store.get(intent_id, "payment_intent", label="payment_intent")
    if intent["status"] in ("succeeded", "canceled", "processing"):
        raise refused(
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    intent.update(status="canceled", canceled_at=store.now(), next_action=None)
    intent["cancellation_reason"] = as_str(params, "cancellation_reason")
    store.emit("payment_intent.canceled", intent)
    return intent


@route("POST", "/v1/payment_intents/{id}")
def intent_update(store: Store, params: Params, intent_id: str) -> Obj:
    intent = store.get(intent_id, "payment_intent", label="payment_intent")
    if "amount" in params and intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise refused("You cannot update the amount of a PaymentIntent that has been confirmed.", param="amount")
    with store.updating(intent, "payment_intent.updated"):
        assign(intent, params, "description", "receipt_email")
        if "amount" in params:
            intent["amount"] = as_int(params, "amount", minimum=1)
    return intent


retrieve_and_list("/v1/charges", "charge", "customer", "payment_intent")
retrieve_and_list("/v1/payment_intents", "payment_intent", "customer", label="payment_intent")
