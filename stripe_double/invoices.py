"""Subscription invoices: drafted, finalized, then collected off-session from the saved payment method.

Shapes are those of the pinned API version: an invoice names its subscription under
``parent.subscription_details.subscription``; each line's service period is ``lines.data[].period``;
proration lines say so in ``parent.invoice_item_details.proration``; payments are listed in the
includable ``payments`` (``invoice_payment`` objects pointing at the PaymentIntent).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import payments
from .customers import default_payment_method
from .encoding import Params
from .errors import refused
from .routing import retrieve, retrieve_and_list, route
from .store import Obj, Store, list_filter

RETRY_AFTER = 3 * 86400  # when Stripe's smart retries would try a failed renewal again


@dataclass(frozen=True)
class Line:
    """One invoice line before it is written: a price × quantity over a period, maybe a proration."""

    price: Obj
    quantity: int
    amount: int
    start: int
    end: int
    description: str
    subscription_item: str
    proration: bool = False
    of_item: bool = False  # a subscription item's own (prorated) line, not a pending invoice item's


def invoice_new(
    store: Store, subscription: Obj, *, billing_reason: str, lines: list[Line], start: int, end: int
) -> Obj:
    """A draft invoice for ``subscription`` (announced with ``invoice.created``)."""
    customer = store.get(subscription["customer"], "customer")
    invoice_id = store.new_id("in_")
    total = sum(line.amount for line in lines)
    invoice = store.add(
        {
            "id": invoice_id,
            "object": "invoice",
            "account_country": "US",
            "account_name": "Sigora (offline Stripe double)",
            "account_tax_ids": None,
            "amount_due": total,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": total,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": None,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": store.now(),
            "currency": subscription["currency"],
            "custom_fields": None,
            "customer": customer["id"],
            "customer_address": None,
            "customer_email": customer["email"],
            "customer_name": customer["name"],
            "customer_phone": None,
            "customer_shipping": None,
            "customer_tax_exempt": "none",
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": None,
            "ending_balance": None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": {
                "object": "list",
                "data": [_line(store, invoice_id, subscription, line) for line in lines],
                "has_more": False,
                "total_count": len(lines),
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            "livemode": False,
            "metadata": {},
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
                "type": "subscription_details",
            },
            "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
            "period_end": end,
            "period_start": start,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "test_clock": None,
            "threshold_reason": None,
            "total": total,
            "total_discount_amounts": [],
            "total_excluding_tax": total,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": None,
        }
    )
    store.emit("invoice.created", invoice)
    return invoice


def _line(store: Store, invoice_id: str, subscription: Obj, line: Line) -> Obj:
    subscription_ref = {"proration": line.proration, "proration_details": {"credited_items": None}}
    if line.proration and not line.of_item:
        parent = {
            "invoice_item_details": {
                **subscription_ref,
                "invoice_item": store.new_id("ii_"),
                "subscription": subscription["id"],
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    else:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                **subscription_ref,
                "invoice_item": None,
                "subscription": subscription["id"],
                "subscription_item": line.subscription_item,
            },
            "type": "subscription_item_details",
        }
    return {
        "id": store.new_id("il_"),
        "object": "line_item",
        "amount": line.amount,
        "currency": line.price["currency"],
        "description": line.description,
        "discount_amounts": [],
        "discountable": not line.proration,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"end": line.end, "start": line.start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": line.price["id"], "product": line.price["product"]},
            "type": "price_details",
            "unit_amount_decimal": str(Decimal(line.amount) / line.quantity)
            if line.proration
            else str(line.price["unit_amount"]),
        },
        "quantity": line.quantity,
        "subtotal": line.amount,
        "taxes": [],
    }


def invoice_finalize(store: Store, invoice: Obj) -> None:
    customer = store.get(invoice["customer"], "customer")
    invoice["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    now = store.now()
    invoice.update(status="open", effective_at=now, ending_balance=0)
    invoice["hosted_invoice_url"] = f"{store.base_url}/invoices/{invoice['id']}"
    invoice["status_transitions"]["finalized_at"] = now
    store.emit("invoice.finalized", invoice)


def invoice_collect(store: Store, invoice: Obj, *, behaviour: str | None = None) -> None:
    """Charge the invoice to the subscription's (or customer's) saved payment method, off-session."""
    if invoice["amount_remaining"] == 0:
        _paid(store, invoice, None)
        return
    subscription = store.get(invoice["parent"]["subscription_details"]["subscription"], "subscription")
    method = default_payment_method(store, invoice["customer"], subscription["default_payment_method"])
    if method is None:
        _failed(store, invoice, action_required=False)
        return
    intent = payments.intent_new(
        store,
        amount=invoice["amount_remaining"],
        currency=invoice["currency"],
        customer=invoice["customer"],
        description=_DESCRIPTIONS.get(invoice["billing_reason"], "Invoice payment"),
        purposes=[("invoice", invoice["id"])],
    )
    _payment_new(store, invoice, intent)
    payments.intent_attempt(store, intent, method, off_session=True, behaviour=behaviour)


def invoice_paid_by(store: Store, invoice: Obj, intent: Obj) -> None:
    """Settle ``invoice`` with a PaymentIntent that was made before it (the one Checkout confirmed)."""
    _payment_new(store, invoice, intent)
    if intent["status"] == "succeeded":
        _paid(store, invoice, intent)
    else:
        intent["_purposes"].insert(0, ("invoice", invoice["id"]))


_DESCRIPTIONS = {
    "subscription_create": "Subscription creation",
    "subscription_cycle": "Subscription cycle",
    "subscription_update": "Subscription update",
}


def _payment_new(store: Store, invoice: Obj, intent: Obj) -> Obj:
    return store.add(
        {
            "id": store.new_id("inpay_"),
            "object": "invoice_payment",
            "amount_paid": None,
            "amount_requested": invoice["amount_remaining"],
            "created": store.now(),
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": {"payment_intent": intent["id"], "type": "payment_intent"},
            "status": "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        }
    )


def _intent_outcome(store: Store, invoice_id: str, intent: Obj, outcome: str) -> None:
    invoice = store.get(invoice_id, "invoice")
    if outcome == "succeeded":
        _paid(store, invoice, intent)
    elif outcome == "failed":
        code = (intent["last_payment_error"] or {}).get("code")
        _failed(store, invoice, action_required=code == "authentication_required")


def _paid(store: Store, invoice: Obj, intent: Obj | None) -> None:
    now = store.now()
    invoice["attempt_count"] += 1 if intent else 0
    invoice.update(
        status="paid",
        attempted=True,
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
    )
    invoice["status_transitions"]["paid_at"] = now
    for payment in store.all("invoice_payment"):
        if intent and payment["payment"]["payment_intent"] == intent["id"]:
            payment.update(status="paid", amount_paid=intent["amount_received"])
            payment["status_transitions"]["paid_at"] = now
    store.emit("invoice.paid", invoice)
    store.emit("invoice.payment_succeeded", invoice)
    subscription = store.get(invoice["parent"]["subscription_details"]["subscription"], "subscription")
    still_open = [other for other in _of_subscription(store, subscription["id"]) if other["status"] == "open"]
    if subscription["status"] in ("past_due", "incomplete") and not still_open:
        subscription_set_status(store, subscription, "active")


def _failed(store: Store, invoice: Obj, *, action_required: bool) -> None:
    invoice.update(attempted=True, attempt_count=invoice["attempt_count"] + 1)
    invoice["next_payment_attempt"] = None if action_required else store.now() + RETRY_AFTER
    if action_required:
        store.emit("invoice.payment_action_required", invoice)
    store.emit("invoice.payment_failed", invoice)
    subscription = store.get(invoice["parent"]["subscription_details"]["subscription"], "subscription")
    if subscription["status"] == "active":
        subscription_set_status(store, subscription, "past_due")


def subscription_set_status(store: Store, subscription: Obj, status: str) -> None:
    previous = {"status": subscription["status"]}
    subscription["status"] = status
    store.emit("customer.subscription.updated", subscription, previous)


def _of_subscription(store: Store, subscription_id: str) -> list[Obj]:
    return [
        invoice
        for invoice in store.all("invoice")
        if invoice["parent"]["subscription_details"]["subscription"] == subscription_id
    ]


def _invoice_payments(store: Store, invoice: Obj) -> Obj:
    url = f"/v1/invoice_payments?invoice={invoice['id']}"
    return store.present(store.page(_payments_of(store, invoice), {"limit": 100}, url))


# --- the API ----------------------------------------------------------------------------------------


@route("GET", "/v1/invoices/{id}/lines")
def invoice_lines(store: Store, params: Params, invoice_id: str) -> Obj:
    lines = store.get(invoice_id, "invoice")["lines"]
    return {**lines, "data": lines["data"]}


@route("GET", "/v1/invoices")
def invoice_list(store: Store, params: Params) -> Obj:
    invoices = list_filter(store.all("invoice"), params, "customer", "status")
    if params.get("subscription"):
        wanted = {invoice["id"] for invoice in _of_subscription(store, str(params["subscription"]))}
        invoices = [invoice for invoice in invoices if invoice["id"] in wanted]
    return store.page(invoices, params, "/v1/invoices")


@route("POST", "/v1/invoices/{id}/pay")
def invoice_pay(store: Store, params: Params, invoice_id: str) -> Obj:
    invoice = store.get(invoice_id, "invoice")
    if invoice["status"] != "open":
        raise refused(f"Invoice is already {invoice['status']}.", code="invoice_not_open")
    invoice_collect(store, invoice)
    if invoice["status"] != "paid":
        intents = [store.get(p["payment"]["payment_intent"], "payment_intent") for p in _payments_of(store, invoice)]
        if intents and intents[-1]["status"] == "requires_payment_method":
            raise payments.card_error(store, intents[-1])
    return invoice


def _payments_of(store: Store, invoice: Obj) -> list[Obj]:
    return [payment for payment in store.all("invoice_payment") if payment["invoice"] == invoice["id"]]


def register(store: Store) -> None:
    store.includables[("invoice", "payments")] = _invoice_payments
    payments.on_outcome["invoice"] = _intent_outcome


retrieve_and_list("/v1/invoice_payments", "invoice_payment", "invoice", "status", label="invoice_payment")
retrieve("/v1/invoices", "invoice")
