"""Customers and their payment methods, each card carrying how it behaves when charged."""

from __future__ import annotations

from typing import Any

from .encoding import Params, as_dict, as_str, assign, merge_metadata
from .errors import invalid, refused
from .routing import retrieve_and_list, route
from .store import Obj, Store, list_filter

# How a saved payment method answers a charge: what the test cards of Stripe's docs do.
BEHAVIOURS = ("success", "decline", "authenticate", "delayed")
CARDS = {
    "success": ("4242424242424242", "4242"),
    "decline": ("4000000000000002", "0002"),
    "authenticate": ("4000002760003184", "3184"),
}
_MAGIC_METHODS = {  # Stripe's test-mode payment method and token shortcuts
    "pm_card_visa": "success",
    "pm_card_chargeDeclined": "decline",
    "pm_card_authenticationRequired": "authenticate",
    "pm_card_threeDSecure2Required": "authenticate",
    "pm_usBankAccount": "delayed",
    "tok_visa": "success",
    "tok_chargeDeclined": "decline",
    "tok_authenticationRequired": "authenticate",
    "tok_threeDSecure2Required": "authenticate",
}
_NUMBERS = {number: behaviour for behaviour, (number, _) in CARDS.items()} | {"4000002500003155": "authenticate"}


def check_behaviour(card: str) -> str:
    if card not in BEHAVIOURS:
        raise ValueError(f"card must be one of {', '.join(BEHAVIOURS)}, not {card!r}")
    return card


# --- customers --------------------------------------------------------------------------------------


def customer_new(store: Store, *, email: str | None, name: str | None = None, metadata: Obj | None = None) -> Obj:
    customer = store.add(
        {
            "id": store.new_id("cus_", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": store.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": email,
            "invoice_prefix": store.new_id("", 8).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": metadata or {},
            "name": name,
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
    )
    store.emit("customer.created", customer)
    return customer


@route("POST", "/v1/customers")
def customer_create(store: Store, params: Params) -> Obj:
    customer = customer_new(
        store,
        email=as_str(params, "email"),
        name=as_str(params, "name"),
        metadata=merge_metadata({}, params.get("metadata", {})),
    )
    if (
        params.get("description")
        or params.get("phone")
        or params.get("payment_method")
        or params.get("invoice_settings")
    ):
        _customer_apply(store, customer, params)
    return customer


@route("POST", "/v1/customers/{id}")
def customer_update(store: Store, params: Params, customer_id: str) -> Obj:
    customer = store.get(customer_id, "customer")
    with store.updating(customer, "customer.updated"):
        _customer_apply(store, customer, params)
    return customer


def _customer_apply(store: Store, customer: Obj, params: Params) -> None:
    assign(customer, params, "email", "name", "description", "phone")
    if params.get("payment_method"):
        payment_method_attach(store, {"customer": customer["id"]}, params["payment_method"])
    settings = as_dict(params, "invoice_settings")
    if "default_payment_method" in settings:
        method_id = settings["default_payment_method"] or None
        if method_id is not None:
            method = store.find(method_id)
            if method is None or method.get("customer") != customer["id"]:
                raise invalid(
                    f"The customer does not have a payment method with the ID {method_id}. The payment method "
                    "must be attached to the customer.",
                    param="invoice_settings[default_payment_method]",
                )
        customer["invoice_settings"]["default_payment_method"] = method_id


# --- payment methods ----------------------------------------------------------------------------------


def payment_method_new(store: Store, behaviour: str, *, email: str | None = None) -> Obj:
    """A payment method as the hosted page or a test token makes it; ``behaviour`` decides its charges."""
    check_behaviour(behaviour)
    method: Obj = {
        "id": store.new_id("pm_"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {"address": None, "email": email, "name": None, "phone": None, "tax_id": None},
        "created": store.now(),
        "customer": None,
        "livemode": False,
        "metadata": {},
        "_behaviour": behaviour,
    }
    if behaviour == "delayed":
        method["type"] = "us_bank_account"
        method["us_bank_account"] = {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "financial_connections_account": None,
            "fingerprint": store.new_id("", 16),
            "last4": "6789",
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "routing_number": "110000000",
            "status_details": {},
        }
    else:
        method["type"] = "card"
        method["card"] = {
            "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "double" + CARDS[behaviour][1],
            "funding": "credit",
            "generated_from": None,
            "last4": CARDS[behaviour][1],
            "networks": {"available": ["visa"], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }
    return store.add(method)


def payment_method_resolve(store: Store, method_id: str, *, param: str = "payment_method") -> Obj:
    """A stored payment method, or a fresh one for Stripe's test shortcuts (``pm_card_visa``, …)."""
    if method_id in _MAGIC_METHODS:
        return payment_method_new(store, _MAGIC_METHODS[method_id])
    return store.get(method_id, "payment_method", label="PaymentMethod", param=param)


def payment_method_attach_to(store: Store, method: Obj, customer: Obj) -> None:
    if method["customer"] == customer["id"]:
        return
    if method["customer"] is not None:
        raise refused(
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
        )
    method["customer"] = customer["id"]
    store.emit("payment_method.attached", method)


@route("POST", "/v1/payment_methods")
def payment_method_create(store: Store, params: Params) -> Obj:
    if params.get("type") != "card":
        raise invalid("The double only creates payment methods of type card.", param="type")
    card = as_dict(params, "card")
    if card.get("token"):
        behaviour = _MAGIC_METHODS.get(card["token"])
        if behaviour is None:
            raise invalid(f"No such token: '{card['token']}'", param="card[token]", code="resource_missing")
    else:
        behaviour = _NUMBERS.get(str(card.get("number", "")).replace(" ", ""), "success")
    method = payment_method_new(store, behaviour)
    method["metadata"] = merge_metadata({}, params.get("metadata", {}))
    return method


@route("POST", "/v1/payment_methods/{id}/attach")
def payment_method_attach(store: Store, params: Params, method_id: str) -> Obj:
    customer = store.get(as_str(params, "customer", required=True), "customer", param="customer")
    method = payment_method_resolve(store, method_id, param="payment_method")
    payment_method_attach_to(store, method, customer)
    return method


@route("POST", "/v1/payment_methods/{id}/detach")
def payment_method_detach(store: Store, params: Params, method_id: str) -> Obj:
    method = store.get(method_id, "payment_method", label="PaymentMethod")
    if method["customer"] is None:
        raise refused("The payment method you provided is not attached to a customer so detachment is impossible.")
    customer = store.get(method["customer"], "customer")
    if customer["invoice_settings"]["default_payment_method"] == method_id:
        customer["invoice_settings"]["default_payment_method"] = None
    method["customer"] = None
    store.emit("payment_method.detached", method, {"customer": customer["id"]})
    return method


@route("GET", "/v1/customers/{id}/payment_methods")
def customer_payment_methods(store: Store, params: Params, customer_id: str) -> Obj:
    store.get(customer_id, "customer")
    methods = list_filter(store.all("payment_method"), {**params, "customer": customer_id}, "customer", "type")
    return store.page(methods, params, f"/v1/customers/{customer_id}/payment_methods")


def customer_set_card(store: Store, customer_id: str, card: str) -> list[Obj]:
    """Make every card saved on the customer behave as ``card`` from now on (one is saved if none is)."""
    check_behaviour(card)
    customer = store.get(customer_id, "customer")
    methods = [method for method in store.all("payment_method") if method["customer"] == customer_id]
    if not methods:
        method = payment_method_new(store, card, email=customer["email"])
        payment_method_attach_to(store, method, customer)
        if customer["invoice_settings"]["default_payment_method"] is None:
            customer["invoice_settings"]["default_payment_method"] = method["id"]
        methods = [method]
    for method in methods:
        method["_behaviour"] = card
    return methods


def default_payment_method(store: Store, customer_id: str | None, *preferred: Any) -> Obj | None:
    """The first of ``preferred`` that is set, else the customer's invoice default."""
    for method_id in preferred:
        if method_id:
            return store.get(method_id, "payment_method", label="PaymentMethod")
    customer = store.find(customer_id)
    method_id = customer["invoice_settings"]["default_payment_method"] if customer else None
    return store.find(method_id)


retrieve_and_list("/v1/customers", "customer", "email")
retrieve_and_list("/v1/payment_methods", "payment_method", "customer", "type", label="PaymentMethod")
