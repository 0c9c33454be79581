"""Billing Portal sessions and what the portal page lets a customer do to their subscription."""

from __future__ import annotations

from . import subscriptions
from .encoding import Params, as_str
from .errors import refused
from .routing import route
from .store import Obj, Store


@route("POST", "/v1/billing_portal/sessions")
def portal_create(store: Store, params: Params) -> Obj:
    customer = store.get(as_str(params, "customer", required=True), "customer", param="customer")
    portal_id = store.new_id("bps_")
    return store.add(
        {
            "id": portal_id,
            "object": "billing_portal.session",
            "configuration": "bpc_double",
            "created": store.now(),
            "customer": customer["id"],
            "customer_account": None,
            "flow": None,
            "livemode": False,
            "locale": as_str(params, "locale"),
            "on_behalf_of": None,
            "return_url": as_str(params, "return_url"),
            "url": f"{store.base_url}/portal/{portal_id}",
        }
    )


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
    old_price, new_price = store.get(item["price"], "price"), store.get(price_id, "price")
    increase = new_price["unit_amount"] * quantity > old_price["unit_amount"] * item["quantity"]
    params = {
        "items": [{"id": item["id"], "price": price_id, "quantity": quantity}],
        "proration_behavior": "always_invoice" if increase else "none",
    }
    return subscriptions.subscription_change(store, subscription, params)


def portal_set_cancel(store: Store, portal: Obj, subscription_id: str, *, cancel: bool) -> Obj:
    subscription = portal_subscription(store, portal, subscription_id)
    params = {"cancel_at_period_end": cancel, "proration_behavior": "none"}
    return subscriptions.subscription_change(store, subscription, params)
