"""Billing Portal sessions and what the portal page lets a customer do to their subscription.

A session may carry a flow (``flow_data``): the double supports ``subscription_update_confirm``, the
deep link to the confirm page of one plan or seat change, as Stripe's portal has it.
"""

from __future__ import annotations

from . import subscriptions
from .encoding import Params, as_dict, as_int, as_list, as_str
from .errors import invalid, missing, refused
from .routing import route
from .store import Obj, Store

FLOW_TYPES = (
    "customer_update",
    "payment_method_update",
    "subscription_cancel",
    "subscription_pause",
    "subscription_update",
    "subscription_update_confirm",
)
AFTER_COMPLETION = ("hosted_confirmation", "portal_homepage", "redirect")


@route("POST", "/v1/billing_portal/sessions")
def portal_create(store: Store, params: Params) -> Obj:
    customer = store.get(as_str(params, "customer", required=True), "customer", param="customer")
    flow = _flow(store, customer, as_dict(params, "flow_data")) if params.get("flow_data") not in (None, "") else None
    portal_id = store.new_id("bps_")
    return store.add(
        {
            "id": portal_id,
            "object": "billing_portal.session",
            "configuration": "bpc_double",
            "created": store.now(),
            "customer": customer["id"],
            "customer_account": None,
            "flow": flow,
            "livemode": False,
            "locale": as_str(params, "locale"),
            "on_behalf_of": None,
            "return_url": as_str(params, "return_url"),
            "url": f"{store.base_url}/portal/{portal_id}",
            "_flow_done": False,
        }
    )


def _flow(store: Store, customer: Obj, data: Params) -> Obj:
    """``flow_data`` checked as Stripe checks it, and the session's ``flow`` made of it."""
    kind = as_str(data, "type")
    if kind is None:
        raise missing("flow_data[type]")
    if kind not in FLOW_TYPES:
        raise invalid(f"Invalid flow_data[type]: must be one of {', '.join(FLOW_TYPES)}", param="flow_data[type]")
    if kind != "subscription_update_confirm":
        raise invalid("The double supports the `subscription_update_confirm` flow only.", param="flow_data[type]")
    return {
        "after_completion": _after_completion(as_dict(data, "after_completion")),
        "customer_update": None,
        "subscription_cancel": None,
        "subscription_pause": None,
        "subscription_update": None,
        "subscription_update_confirm": _update_confirm(store, customer, data),
        "type": kind,
    }


def _after_completion(data: Params) -> Obj:
    kind = as_str(data, "type") or "portal_homepage"
    if kind not in AFTER_COMPLETION:
        raise invalid(
            f"Invalid flow_data[after_completion][type]: must be one of {', '.join(AFTER_COMPLETION)}",
            param="flow_data[after_completion][type]",
        )
    redirect = None
    if kind == "redirect":
        url = as_str(as_dict(data, "redirect"), "return_url")
        if url is None:
            raise missing("flow_data[after_completion][redirect][return_url]")
        redirect = {"return_url": url}
    hosted = None
    if kind == "hosted_confirmation":
        hosted = {"custom_message": as_str(as_dict(data, "hosted_confirmation"), "custom_message")}
    return {"hosted_confirmation": hosted, "redirect": redirect, "type": kind}


def _update_confirm(store: Store, customer: Obj, data: Params) -> Obj:
    where = "flow_data[subscription_update_confirm]"
    if "subscription_update_confirm" not in data:
        raise missing(where)
    confirm = as_dict(data, "subscription_update_confirm")
    subscription_id = as_str(confirm, "subscription")
    if subscription_id is None:
        raise missing(f"{where}[subscription]")
    subscription = store.get(subscription_id, "subscription", param=f"{where}[subscription]")
    if subscription["customer"] != customer["id"]:
        raise invalid(
            f"The subscription {subscription_id} does not belong to the customer {customer['id']}.",
            param=f"{where}[subscription]",
        )
    if subscription["status"] in ("canceled", "incomplete", "incomplete_expired"):
        raise refused(
            f"The subscription {subscription_id} is {subscription['status']} and cannot be updated.",
            param=f"{where}[subscription]",
        )
    entries = as_list(confirm, "items")
    if not entries:
        raise missing(f"{where}[items]")
    if len(entries) > 1:
        raise invalid("Only one subscription item can be updated in this flow.", param=f"{where}[items]")
    entry = entries[0]
    if not isinstance(entry, dict):
        raise invalid(f"Invalid hash: {where}[items][0]", param=f"{where}[items][0]")
    item_id = as_str(entry, "id")
    if item_id is None:
        raise missing(f"{where}[items][0][id]")
    item = next((item for item in subscription["items"]["data"] if item["id"] == item_id), None)
    if item is None:
        raise invalid(
            f"No such subscription item: '{item_id}'", param=f"{where}[items][0][id]", code="resource_missing"
        )
    price_id = as_str(entry, "price")
    if price_id is not None:
        price = store.get(price_id, "price", param=f"{where}[items][0][price]")
        if not price["active"] or not price["recurring"]:
            raise invalid(
                f"The price {price_id} is not an active recurring price the portal offers.",
                param=f"{where}[items][0][price]",
            )
    quantity = as_int(entry, "quantity", minimum=1)
    return {
        "discounts": None,
        "items": [{"id": item_id, "price": price_id, "quantity": quantity}],
        "subscription": subscription["id"],
    }


def portal_subscriptions(store: Store, portal: Obj) -> list[Obj]:
    found = [sub for sub in store.all("subscription") if sub["customer"] == portal["customer"]]
    return [sub for sub in found if sub["status"] != "canceled"]


def portal_subscription(store: Store, portal: Obj, subscription_id: str) -> Obj:
    for subscription in portal_subscriptions(store, portal):
        if subscription["id"] == subscription_id:
            return subscription
    raise refused("That subscription is not one this customer can manage.")


def portal_change_plan(store: Store, portal: Obj, subscription_id: str, price_id: str, quantity: int) -> Obj:
    """What the portal's plan and seats form does: an increase is billed at once, a decrease is not credited."""
    subscription = portal_subscription(store, portal, subscription_id)
    item = subscription["items"]["data"][0]
    params = {
        "items": [{"id": item["id"], "price": price_id, "quantity": quantity}],
        "proration_behavior": "always_invoice" if portal_is_increase(store, item, price_id, quantity) else "none",
    }
    return subscriptions.subscription_change(store, subscription, params)


def portal_set_cancel(store: Store, portal: Obj, subscription_id: str, *, cancel: bool) -> Obj:
    subscription = portal_subscription(store, portal, subscription_id)
    params = {"cancel_at_period_end": cancel, "proration_behavior": "none"}
    return subscriptions.subscription_change(store, subscription, params)


def portal_is_increase(store: Store, item: Obj, price_id: str, quantity: int) -> bool:
    old_price, new_price = store.get(item["price"], "price"), store.get(price_id, "price")
    return new_price["unit_amount"] * quantity > old_price["unit_amount"] * item["quantity"]


def portal_flow_change(store: Store, portal: Obj) -> tuple[Obj, Obj, str, int]:
    """The change a ``subscription_update_confirm`` flow proposes: subscription, its item, price and quantity."""
    confirm = portal["flow"]["subscription_update_confirm"]
    subscription = portal_subscription(store, portal, confirm["subscription"])
    wanted = confirm["items"][0]
    item = next((item for item in subscription["items"]["data"] if item["id"] == wanted["id"]), None)
    if item is None:
        raise refused("The subscription no longer has the item this change was for.")
    return subscription, item, wanted["price"] or item["price"], wanted["quantity"] or item["quantity"]


def portal_flow_due_now(store: Store, subscription: Obj, item: Obj, price_id: str, quantity: int) -> int:
    """What confirming would bill today: the prorated increase (the portal bills a decrease nothing)."""
    if not portal_is_increase(store, item, price_id, quantity):
        return 0
    left, length = (
        max(0, item["current_period_end"] - store.now()),
        item["current_period_end"] - item["current_period_start"],
    )
    old, new = store.get(item["price"], "price"), store.get(price_id, "price")
    return subscriptions.prorate(new["unit_amount"] * quantity, left=left, length=length) - subscriptions.prorate(
        old["unit_amount"] * item["quantity"], left=left, length=length
    )


def portal_flow_confirm(store: Store, portal: Obj) -> Obj:
    """The customer confirms the flow's change: applied once, as the portal's own form applies it."""
    if portal["flow"] is None or portal["flow"]["type"] != "subscription_update_confirm":
        raise refused("This portal session has no change to confirm.")
    if portal["_flow_done"]:
        raise refused("This change has already been confirmed.")
    subscription, _, price_id, quantity = portal_flow_change(store, portal)
    changed = portal_change_plan(store, portal, subscription["id"], price_id, quantity)
    portal["_flow_done"] = True
    return changed
