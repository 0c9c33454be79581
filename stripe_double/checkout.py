"""Checkout Sessions, paid on the double's hosted page."""

from __future__ import annotations

from typing import Any

from . import invoices, payments, subscriptions
from .catalog import price_label, price_new
from .customers import customer_new, payment_method_attach_to, payment_method_new
from .encoding import Params, as_dict, as_int, as_list, as_str, merge_metadata
from .errors import invalid, missing, refused
from .routing import retrieve_and_list, route
from .store import Obj, Store

DEFAULT_LIFETIME = 24 * 3600
_MIN_LIFETIME = 30 * 60
GUEST_EMAIL = "customer@example.com"  # what the hosted page "collects" when the session names nobody


# --- creating ---------------------------------------------------------------------------------------


@route("POST", "/v1/checkout/sessions")
def session_create(store: Store, params: Params) -> Obj:
    mode = as_str(params, "mode", required=True)
    if mode not in ("payment", "subscription"):
        raise invalid("The double supports Checkout in `payment` and `subscription` mode only.", param="mode")
    customer_id, email = as_str(params, "customer"), as_str(params, "customer_email")
    if customer_id and email:
        raise invalid("You may only specify one of these parameters: customer, customer_email.", param="customer_email")
    if customer_id:
        email = store.get(customer_id, "customer", param="customer")["email"]
    intent_data, subscription_data = as_dict(params, "payment_intent_data"), as_dict(params, "subscription_data")
    if mode == "subscription" and intent_data:
        raise invalid("You can not pass `payment_intent_data` in `subscription` mode.", param="payment_intent_data")
    if mode == "payment" and subscription_data:
        raise invalid("You can not pass `subscription_data` in `payment` mode.", param="subscription_data")
    now = store.now()
    expires_at = as_int(params, "expires_at") or now + DEFAULT_LIFETIME
    if not now + _MIN_LIFETIME <= expires_at <= now + DEFAULT_LIFETIME:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes and at most 24 hours from Checkout Session "
            "creation.",
            param="expires_at",
        )
    items = _line_items(store, mode, as_list(params, "line_items"))
    anchor = _billing_cycle_anchor(store, subscription_data, items)
    if anchor is not None:
        _items_prorate(store, items, anchor)
    total = sum(item["amount_total"] for item in items)
    session_id = store.new_id("cs_test_a1", 56)
    customer_creation = as_str(params, "customer_creation") or ("if_required" if mode == "payment" else None)
    return store.add(
        {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": False},
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": as_str(params, "billing_address_collection"),
            "cancel_url": as_str(params, "cancel_url"),
            "client_reference_id": as_str(params, "client_reference_id"),
            "client_secret": None,
            "collected_information": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": items[0]["currency"],
            "currency_conversion": None,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": customer_id,
            "customer_creation": None if customer_id else customer_creation,
            "customer_details": None,
            "customer_email": as_str(params, "customer_email"),
            "discounts": [],
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": _invoice_creation_off() if mode == "payment" else None,
            "livemode": False,
            "locale": as_str(params, "locale"),
            "metadata": merge_metadata({}, params.get("metadata", {})),
            "mode": mode,
            "origin_context": None,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card", "us_bank_account"],
            "payment_status": "unpaid",
            "permissions": None,
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": as_str(params, "success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted_page",
            "url": f"{store.base_url}/checkout/{session_id}",
            "wallet_options": None,
            "_items": items,
            "_email": email,
            "_intent": None,
            "_intent_data": intent_data,
            "_subscription_metadata": merge_metadata({}, subscription_data.get("metadata", {})),
            "_anchor": anchor,
        }
    )


def _billing_cycle_anchor(store: Store, data: Params, items: list[Obj]) -> int | None:
    """``subscription_data[billing_cycle_anchor]``: a future time before the first natural renewal, or None."""
    anchor = as_int(data, "billing_cycle_anchor")
    behaviour = as_str(data, "proration_behavior")
    if behaviour is not None and behaviour not in ("create_prorations", "none"):
        raise invalid(
            "Invalid subscription_data[proration_behavior]: must be one of create_prorations, none",
            param="subscription_data[proration_behavior]",
        )
    if anchor is None:
        return None
    if behaviour == "none":
        raise invalid(
            "The double supports a billing cycle anchor with proration_behavior=create_prorations only.",
            param="subscription_data[proration_behavior]",
        )
    now = store.now()
    natural = subscriptions.period(now, store.get(items[0]["price"], "price")["recurring"], 0)[1]
    if not now < anchor < natural:
        raise invalid(
            "subscription_data[billing_cycle_anchor] must be a future timestamp before the subscription's first "
            "natural billing date.",
            param="subscription_data[billing_cycle_anchor]",
        )
    return anchor


def _items_prorate(store: Store, items: list[Obj], anchor: int) -> None:
    """Charge each item for the time left until the anchor (what "due today" is on Checkout's page)."""
    for item in items:
        price = store.get(item["price"], "price")
        left, length = subscriptions.until_anchor(anchor, price["recurring"], store.now())
        amount = subscriptions.prorate(price["unit_amount"] * item["quantity"], left=left, length=length)
        item.update(amount_subtotal=amount, amount_total=amount)


def _items_whole(store: Store, session: Obj) -> None:
    """The anchor passed before the buyer paid: Checkout charges the whole period that starts at it."""
    for item in session["_items"]:
        amount = store.get(item["price"], "price")["unit_amount"] * item["quantity"]
        item.update(amount_subtotal=amount, amount_total=amount)
    total = sum(item["amount_total"] for item in session["_items"])
    session.update(amount_subtotal=total, amount_total=total)


def _invoice_creation_off() -> Obj:
    """A payment-mode session makes no invoice, but Stripe still shows the (empty) invoice settings."""
    invoice_data = {
        "account_tax_ids": None,
        "custom_fields": None,
        "description": None,
        "footer": None,
        "issuer": None,
        "metadata": {},
        "rendering_options": None,
    }
    return {"enabled": False, "invoice_data": invoice_data}


def _line_items(store: Store, mode: str, entries: list[Any]) -> list[Obj]:
    if not entries:
        raise missing("line_items")
    items = []
    for index, entry in enumerate(entries):
        where = f"line_items[{index}]"
        if not isinstance(entry, dict):
            raise invalid(f"Invalid hash: {where}", param=where)
        quantity = as_int(entry, "quantity", required=True, minimum=1) or 1
        if entry.get("price"):
            price = store.get(entry["price"], "price", param=f"{where}[price]")
            if not price["active"]:
                raise invalid(
                    "The price specified is inactive. This field only accepts active prices.", param=f"{where}[price]"
                )
        elif entry.get("price_data"):
            price = price_new(store, as_dict(entry, "price_data"), inline=True)
        else:
            raise invalid(f"You must specify either `price` or `price_data` in {where}.", param=where)
        if mode == "payment" and price["recurring"]:
            raise invalid(
                "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode "
                "or use only one-time prices.",
                param=f"{where}[price]",
            )
        if mode == "subscription" and not price["recurring"]:
            raise invalid("The double sells only recurring prices in `subscription` mode.", param=f"{where}[price]")
        if items and price["currency"] != items[0]["currency"]:
            raise invalid("All line items must share one currency.", param=f"{where}[price]")
        amount = price["unit_amount"] * quantity
        items.append(
            {
                "id": store.new_id("li_"),
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": price_label(store, price),
                "metadata": {},
                "price": price["id"],
                "quantity": quantity,
            }
        )
    return items


def session_items(store: Store, session: Obj) -> list[Obj]:
    """The session's line items as the API shows them (prices embedded)."""
    return [{**item, "price": store.render(store.get(item["price"], "price"))} for item in session["_items"]]


def _items_list(store: Store, session: Obj) -> Obj:
    data = session_items(store, session)
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session['id']}/line_items",
    }


# --- paying -----------------------------------------------------------------------------------------


def session_pay(store: Store, session: Obj, card: str) -> str:
    """The buyer pays on the hosted page with a test card; returns the payment's outcome."""
    if session["status"] != "open":
        raise refused(f"This Checkout Session is {session['status']} and can no longer be paid.")
    intent = store.find(session["_intent"])
    if intent is not None and intent["status"] in ("requires_action", "processing"):
        raise refused("This Checkout Session's payment is already under way.")
    method = payment_method_new(store, card, email=session["_email"] or GUEST_EMAIL)
    if intent is None:
        intent = _intent_for(store, session)
    return payments.intent_attempt(store, intent, method, off_session=False)


def _intent_for(store: Store, session: Obj) -> Obj:
    data = session["_intent_data"]
    subscribing = session["mode"] == "subscription"
    saving = subscribing or bool(data.get("setup_future_usage"))
    if session["_anchor"] is not None and session["_anchor"] <= store.now():
        _items_whole(store, session)
    if session["customer"] is None and (saving or session["customer_creation"] == "always"):
        customer = customer_new(store, email=session["_email"] or GUEST_EMAIL)
        session["customer"] = customer["id"]
    intent = payments.intent_new(
        store,
        amount=session["amount_total"],
        currency=session["currency"],
        customer=session["customer"],
        metadata=merge_metadata({}, data.get("metadata", {})),
        description="Subscription creation" if subscribing else as_str(data, "description"),
        setup_future_usage="off_session" if subscribing else as_str(data, "setup_future_usage"),
        receipt_email=as_str(data, "receipt_email"),
        purposes=[("checkout", session["id"])],
    )
    session["_intent"] = intent["id"]
    if not subscribing:
        session["payment_intent"] = intent["id"]
    return intent


def _intent_outcome(store: Store, session_id: str, intent: Obj, outcome: str) -> None:
    session = store.get(session_id, "checkout.session")
    if session["status"] == "open" and outcome in ("succeeded", "processing"):
        _complete(store, session, intent, paid=outcome == "succeeded")
    elif session["status"] == "complete" and session["payment_status"] == "unpaid":
        if outcome == "succeeded":
            session["payment_status"] = "paid"
            store.emit("checkout.session.async_payment_succeeded", session)
        elif outcome == "failed":
            store.emit("checkout.session.async_payment_failed", session)


def _complete(store: Store, session: Obj, intent: Obj, *, paid: bool) -> None:
    if session["mode"] == "subscription":
        customer = store.get(session["customer"], "customer")
        method = store.get(intent["payment_method"], "payment_method")
        payment_method_attach_to(store, method, customer)
        items = [(store.get(item["price"], "price"), item["quantity"]) for item in session["_items"]]
        anchor = session["_anchor"]
        subscription = subscriptions.subscription_new(
            store,
            customer=customer["id"],
            items=items,
            metadata=dict(session["_subscription_metadata"]),
            default_payment_method=method["id"],
            status="active",
            anchor=anchor,
        )
        short = anchor is not None and anchor > store.now()  # else paid past it: a whole period from the anchor
        prorated = [item["amount_total"] for item in session["_items"]] if short else None
        invoice = subscriptions.subscription_first_invoice(store, subscription, prorated)
        session.update(subscription=subscription["id"], invoice=invoice["id"])
        invoices.invoice_paid_by(store, invoice, intent)
    email = session["_email"] or GUEST_EMAIL
    session.update(status="complete", payment_status="paid" if paid else "unpaid", url=None)
    session["customer_details"] = {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    store.emit("checkout.session.completed", session)


def session_intent(store: Store, session: Obj) -> Obj:
    intent = store.find(session["_intent"])
    if intent is None:
        raise refused(f"Checkout Session {session['id']} has no payment yet.")
    return intent


def session_expire(store: Store, session: Obj) -> Obj:
    if session["status"] != "open":
        raise refused(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This one is {session["status"]}.'
        )
    session.update(status="expired", url=None)
    intent = store.find(session["_intent"])
    if intent is not None and intent["status"] not in ("succeeded", "canceled", "processing"):
        intent.update(status="canceled", canceled_at=store.now(), cancellation_reason="abandoned", next_action=None)
        store.emit("payment_intent.canceled", intent)
    store.emit("checkout.session.expired", session)
    return session


def sessions_expire_due(store: Store) -> None:
    """Expire every open session whose ``expires_at`` the clock has passed."""
    now = store.now()
    for session in store.all("checkout.session"):
        if session["status"] == "open" and session["expires_at"] <= now:
            session_expire(store, session)


# --- the API ----------------------------------------------------------------------------------------


@route("GET", "/v1/checkout/sessions/{id}/line_items")
def session_line_items(store: Store, params: Params, session_id: str) -> Obj:
    session = store.get(session_id, "checkout.session", label="checkout.session")
    return _items_list(store, session)


@route("POST", "/v1/checkout/sessions/{id}/expire")
def session_expire_api(store: Store, params: Params, session_id: str) -> Obj:
    return session_expire(store, store.get(session_id, "checkout.session", label="checkout.session"))


def register(store: Store) -> None:
    store.includables[("checkout.session", "line_items")] = _items_list
    payments.on_outcome["checkout"] = _intent_outcome


retrieve_and_list(
    "/v1/checkout/sessions",
    "checkout.session",
    "status",
    "customer",
    "payment_intent",
    "subscription",
    label="checkout.session",
)
