"""Subscriptions: calendar periods, renewals, plan and seat changes with proration, cancellation.

In the pinned API version the billing period lives on each subscription item
(``items.data[].current_period_start/end``), not on the subscription.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any

from . import invoices
from .catalog import price_label
from .customers import payment_method_resolve
from .encoding import Params, as_bool, as_int, as_list, as_str, assign, merge_metadata
from .errors import invalid, missing, refused
from .invoices import Line
from .money import format_amount, format_date
from .routing import retrieve, route
from .store import Obj, Store

PRORATION_BEHAVIOURS = ("always_invoice", "create_prorations", "none")


def add_months(timestamp: int, months: int) -> int:
    """The same day and time ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def period(anchor: int, recurring: Obj, cycle: int) -> tuple[int, int]:
    """Start and end of the ``cycle``-th period after ``anchor``, always counted from the anchor (no drift)."""
    count = recurring["interval_count"]
    interval = recurring["interval"]

    def shifted(n: int) -> int:
        if interval in ("day", "week"):
            return anchor + n * count * (86400 if interval == "day" else 7 * 86400)
        return add_months(anchor, n * count * (12 if interval == "year" else 1))

    return shifted(cycle), shifted(cycle + 1)


def until_anchor(anchor: int, recurring: Obj, now: int) -> tuple[int, int]:
    """(time left, length) of a first period that runs from ``now`` to a future ``anchor``: Stripe prorates it
    against the whole interval that would end at the anchor."""
    return anchor - now, anchor - period(anchor, recurring, -1)[0]


def prorate(amount: int, *, left: int, length: int) -> int:
    """``amount`` × left / length in whole cents, rounded half up (negative amounts symmetrically)."""
    magnitude = (abs(amount) * left * 2 + length) // (2 * length)
    return magnitude if amount >= 0 else -magnitude


# --- creating ---------------------------------------------------------------------------------------


def subscription_new(
    store: Store,
    *,
    customer: str,
    items: list[tuple[Obj, int]],
    metadata: Obj,
    default_payment_method: str | None,
    status: str,
    anchor: int | None = None,
) -> Obj:
    """A subscription starting now over ``items`` (price, quantity), announced by ``customer.subscription.created``.

    ``anchor`` (``billing_cycle_anchor``): a future one makes the first period a short one that ends there; one
    that has passed starts the subscription's first whole period at it, as Checkout does when paid too late.
    """
    _check_prices([price for price, _ in items])
    now = store.now()
    recurring = items[0][0]["recurring"]
    start, end = period(now, recurring, 0)
    anchor, cycle = anchor or now, 0
    if anchor > now:
        start, end, cycle = now, anchor, -1  # the renewal at the anchor bills cycle 0
    elif anchor < now:
        start, end = period(anchor, recurring, 0)
    subscription_id = store.new_id("sub_")
    subscription = store.add(
        {
            "id": subscription_id,
            "object": "subscription",
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": anchor,
            "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "created": now,
            "currency": items[0][0]["currency"],
            "customer": customer,
            "days_until_due": None,
            "default_payment_method": default_payment_method,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/subscription_items?subscription={subscription_id}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": metadata,
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None},
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": now,
            "status": status,
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
            "_cycle": cycle,
            "_pending": [],
        }
    )
    for price, quantity in items:
        _item_add(store, subscription, price, quantity, start, end)
    store.emit("customer.subscription.created", subscription)
    return subscription


def subscription_first_invoice(store: Store, subscription: Obj, prorated: list[int] | None = None) -> Obj:
    """The finalized ``subscription_create`` invoice for the first period (not yet paid).

    ``prorated``: the amount of each item for a short first period (up to a future billing cycle anchor),
    billed as proration lines; otherwise each item's whole period.
    """
    now = store.now()
    lines = _period_lines(store, subscription)
    if prorated is not None:
        lines = [
            Line(
                line.price,
                line.quantity,
                amount,
                line.start,
                line.end,
                f"Remaining time on {line.quantity} × {price_label(store, line.price)} until {format_date(line.end)}",
                line.subscription_item,
                proration=True,
                of_item=True,
            )
            for line, amount in zip(lines, prorated, strict=True)
        ]
    invoice = invoices.invoice_new(
        store, subscription, billing_reason="subscription_create", lines=lines, start=now, end=now
    )
    subscription["latest_invoice"] = invoice["id"]
    invoices.invoice_finalize(store, invoice)
    return invoice


def _item_add(store: Store, subscription: Obj, price: Obj, quantity: int, start: int, end: int) -> Obj:
    item = {
        "id": store.new_id("si_", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": store.now(),
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": price["id"],
        "quantity": quantity,
        "subscription": subscription["id"],
        "tax_rates": [],
    }
    subscription["items"]["data"].append(item)
    subscription["items"]["total_count"] = len(subscription["items"]["data"])
    return item


def _check_prices(prices: list[Obj]) -> None:
    for price in prices:
        if not price["recurring"]:
            raise invalid(f"The price `{price['id']}` is not recurring.", param="items")
        if not price["active"]:
            raise invalid("The price specified is inactive. This field only accepts active prices.", param="items")
    first = prices[0]
    for price in prices[1:]:
        if price["currency"] != first["currency"] or price["recurring"]["interval"] != first["recurring"]["interval"]:
            raise invalid("All prices on a subscription must share a currency and billing interval.", param="items")


def _period_lines(store: Store, subscription: Obj) -> list[Line]:
    lines = []
    for item in subscription["items"]["data"]:
        price = store.get(item["price"], "price")
        name = price_label(store, price)
        each = f"{format_amount(price['unit_amount'], price['currency'])} / {price['recurring']['interval']}"
        lines.append(
            Line(
                price=price,
                quantity=item["quantity"],
                amount=price["unit_amount"] * item["quantity"],
                start=item["current_period_start"],
                end=item["current_period_end"],
                description=f"{item['quantity']} × {name} (at {each})",
                subscription_item=item["id"],
            )
        )
    return lines


# --- renewing ---------------------------------------------------------------------------------------


def subscription_renew(store: Store, subscription: Obj, *, behaviour: str | None = None) -> Obj:
    """Move to the next period: bill it (with any pending prorations), or end a subscription set to cancel."""
    if subscription["status"] in ("canceled", "incomplete", "incomplete_expired"):
        raise refused(f"Subscription {subscription['id']} is {subscription['status']} and does not renew.")
    first = subscription["items"]["data"][0]
    old_start, old_end = first["current_period_start"], first["current_period_end"]
    if subscription["cancel_at_period_end"]:
        subscription.update(status="canceled", ended_at=old_end)
        store.emit("customer.subscription.deleted", subscription)
        return subscription
    recurring = store.get(first["price"], "price")["recurring"]
    start, end = period(subscription["billing_cycle_anchor"], recurring, subscription["_cycle"] + 1)
    with store.updating(subscription, "customer.subscription.updated"):
        subscription["_cycle"] += 1
        for item in subscription["items"]["data"]:
            item.update(current_period_start=start, current_period_end=end)
        lines = subscription["_pending"] + _period_lines(store, subscription)
        subscription["_pending"] = []
        invoice = invoices.invoice_new(
            store, subscription, billing_reason="subscription_cycle", lines=lines, start=old_start, end=old_end
        )
        subscription["latest_invoice"] = invoice["id"]
    invoices.invoice_finalize(store, invoice)
    invoices.invoice_collect(store, invoice, behaviour=behaviour)
    return subscription


# --- changing ---------------------------------------------------------------------------------------


def subscription_change(store: Store, subscription: Obj, params: Params) -> Obj:
    """Apply an update as ``POST /v1/subscriptions/{id}`` does; prorate plan and seat changes.

    ``always_invoice`` bills a net increase at once; ``create_prorations`` (Stripe's default) adds it to
    the next renewal's invoice; ``none`` bills nothing. A net decrease is never credited (no refunds).
    """
    if subscription["status"] in ("canceled", "incomplete_expired"):
        raise refused("A canceled subscription can only update its cancellation_details and metadata.")
    behaviour = as_str(params, "proration_behavior") or "create_prorations"
    if behaviour not in PRORATION_BEHAVIOURS:
        raise invalid(
            f"Invalid proration_behavior: must be one of {', '.join(PRORATION_BEHAVIOURS)}", param="proration_behavior"
        )
    old_items = {item["id"]: (item["price"], item["quantity"]) for item in subscription["items"]["data"]}
    with store.updating(subscription, "customer.subscription.updated"):
        _items_apply(store, subscription, as_list(params, "items"))
        if "cancel_at_period_end" in params:
            _cancel_at_period_end(store, subscription, bool(as_bool(params, "cancel_at_period_end")))
        assign(subscription, params)
        if "default_payment_method" in params:
            method_id = as_str(params, "default_payment_method")
            method = payment_method_resolve(store, method_id) if method_id else None
            subscription["default_payment_method"] = method["id"] if method else None
    lines = _proration_lines(store, subscription, old_items) if behaviour != "none" else []
    if sum(line.amount for line in lines) > 0:
        if behaviour == "always_invoice":
            now = store.now()
            invoice = invoices.invoice_new(
                store, subscription, billing_reason="subscription_update", lines=lines, start=now, end=now
            )
            subscription["latest_invoice"] = invoice["id"]
            invoices.invoice_finalize(store, invoice)
            invoices.invoice_collect(store, invoice)
        else:
            subscription["_pending"].extend(lines)
    return subscription


def _items_apply(store: Store, subscription: Obj, updates: list[Any]) -> None:
    items = subscription["items"]["data"]
    for index, update in enumerate(updates):
        if not isinstance(update, dict):
            raise invalid("Invalid array: items must be a list of hashes.", param="items")
        item_id = as_str(update, "id")
        price_id = as_str(update, "price")
        price = store.get(price_id, "price", param=f"items[{index}][price]") if price_id else None
        if price is not None:
            _check_prices([price, store.get(items[0]["price"], "price")] if items else [price])
        quantity = as_int(update, "quantity", minimum=1)
        if item_id is None:
            if price is None:
                raise missing(f"items[{index}][price]")
            if any(item["price"] == price["id"] for item in items):
                raise invalid("Cannot add multiple subscription items with the same price.", param="items")
            first = items[0]
            _item_add(
                store, subscription, price, quantity or 1, first["current_period_start"], first["current_period_end"]
            )
            continue
        matching = [item for item in items if item["id"] == item_id]
        if not matching:
            raise invalid(
                f"No such subscription item: '{item_id}'", param=f"items[{index}][id]", code="resource_missing"
            )
        item = matching[0]
        if as_bool(update, "deleted"):
            if len(items) == 1:
                raise invalid("A subscription must keep at least one item.", param=f"items[{index}][deleted]")
            items.remove(item)
            continue
        if price is not None:
            item["price"] = price["id"]
        if quantity is not None:
            item["quantity"] = quantity
    subscription["items"]["total_count"] = len(items)


def _proration_lines(store: Store, subscription: Obj, old_items: dict[str, tuple[str, int]]) -> list[Line]:
    """Credit the unused time of what was there, charge the remaining time of what is there now."""
    items = {item["id"]: item for item in subscription["items"]["data"]}
    first = subscription["items"]["data"][0]
    start, end, now = first["current_period_start"], first["current_period_end"], store.now()
    left, length = max(0, end - now), end - start
    after = format_date(now)
    lines: list[Line] = []
    for item_id in list(old_items) + [item_id for item_id in items if item_id not in old_items]:
        old = old_items.get(item_id)
        new = (items[item_id]["price"], items[item_id]["quantity"]) if item_id in items else None
        if old == new:
            continue
        for side, sign, words in ((old, -1, "Unused"), (new, 1, "Remaining")):
            if side is None:
                continue
            price, quantity = store.get(side[0], "price"), side[1]
            amount = sign * prorate(price["unit_amount"] * quantity, left=left, length=length)
            description = f"{words} time on {quantity} × {price_label(store, price)} after {after}"
            lines.append(Line(price, quantity, amount, now, end, description, item_id, proration=True))
    return lines


def _cancel_at_period_end(store: Store, subscription: Obj, cancel: bool) -> None:
    end = subscription["items"]["data"][0]["current_period_end"]
    subscription["cancel_at_period_end"] = cancel
    subscription["cancel_at"] = end if cancel else None
    subscription["canceled_at"] = store.now() if cancel else None
    subscription["cancellation_details"]["reason"] = "cancellation_requested" if cancel else None


def subscription_cancel(store: Store, subscription: Obj) -> Obj:
    """End the subscription now (``DELETE /v1/subscriptions/{id}``)."""
    if subscription["status"] == "canceled":
        raise refused("This subscription has already been canceled.")
    now = store.now()
    subscription.update(status="canceled", canceled_at=now, ended_at=now)
    subscription["cancellation_details"]["reason"] = "cancellation_requested"
    store.emit("customer.subscription.deleted", subscription)
    return subscription


# --- rendering and the API --------------------------------------------------------------------------


def _render(store: Store, shown: Obj) -> None:
    for item in shown["items"]["data"]:
        price = store.render(store.get(item["price"], "price"))
        item["price"] = price
        item["plan"] = {
            "id": price["id"],
            "object": "plan",
            "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": "per_unit",
            "created": price["created"],
            "currency": price["currency"],
            "interval": price["recurring"]["interval"],
            "interval_count": price["recurring"]["interval_count"],
            "livemode": False,
            "metadata": price["metadata"],
            "meter": None,
            "nickname": price["nickname"],
            "product": price["product"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }


@route("POST", "/v1/subscriptions")
def subscription_create(store: Store, params: Params) -> Obj:
    customer = store.get(as_str(params, "customer", required=True), "customer", param="customer")
    entries = as_list(params, "items")
    if not entries:
        raise missing("items")
    items = []
    for index, entry in enumerate(entries):
        price = store.get(as_str(entry, "price", required=True), "price", param=f"items[{index}][price]")
        items.append((price, as_int(entry, "quantity", minimum=1) or 1))
    method_id = as_str(params, "default_payment_method")
    subscription = subscription_new(
        store,
        customer=customer["id"],
        items=items,
        metadata=merge_metadata({}, params.get("metadata", {})),
        default_payment_method=payment_method_resolve(store, method_id)["id"] if method_id else None,
        status="incomplete",
    )
    invoices.invoice_collect(store, subscription_first_invoice(store, subscription))
    return subscription


@route("POST", "/v1/subscriptions/{id}")
def subscription_update(store: Store, params: Params, subscription_id: str) -> Obj:
    return subscription_change(store, store.get(subscription_id, "subscription"), params)


@route("DELETE", "/v1/subscriptions/{id}")
def subscription_delete(store: Store, params: Params, subscription_id: str) -> Obj:
    return subscription_cancel(store, store.get(subscription_id, "subscription"))


@route("GET", "/v1/subscriptions")
def subscription_list(store: Store, params: Params) -> Obj:
    found = store.all("subscription")
    status = as_str(params, "status")
    if status is None:
        found = [sub for sub in found if sub["status"] != "canceled"]
    elif status != "all":
        found = [sub for sub in found if sub["status"] == status]
    for field in ("customer",):
        if params.get(field):
            found = [sub for sub in found if sub[field] == params[field]]
    if params.get("price"):
        found = [sub for sub in found if any(item["price"] == params["price"] for item in sub["items"]["data"])]
    return store.page(found, params, "/v1/subscriptions")


def register(store: Store) -> None:
    store.renderers["subscription"] = _render


retrieve("/v1/subscriptions", "subscription")
