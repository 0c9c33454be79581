"""The Stripe Billing Portal: where a subscriber changes plan, seats or card, or cancels.

Stripe bills what changes there (prorated) and reports it in webhooks, which ``subscriptions``
turns into credits; this module only opens the portal, on the confirm page of one change when the
billing page's plan card asks for it.
"""

from __future__ import annotations

from typing import Any

from billing import stripe_gateway as gateway
from billing.errors import InvalidRequest
from billing.models import Plan, Subscription, Workspace
from billing.services.checkout import seats_checked
from billing.services.stripe_catalog import plan_lookup_key, stripe_price_id


def portal_start(
    *, workspace: Workspace, return_url: str, plan_key: str | None = None, seats: int | None = None
) -> str:
    """The Stripe Billing Portal for changing plan, seats or card, or cancelling.

    With ``plan_key`` (and ``seats`` for a per-seat plan; by default what Stripe bills now) the portal
    opens on the confirm page of that one change (``subscription_update_confirm``), so a plan card
    leads to its own plan; the portal then prorates and bills it as for any change made there.
    """
    if not workspace.stripe_customer_id:
        raise InvalidRequest("This workspace has not bought anything yet: there is nothing to manage.", field="plan")
    flow = None if plan_key is None else _plan_change_flow(workspace=workspace, plan_key=plan_key, seats=seats)
    if flow is not None:
        flow["after_completion"] = {"type": "redirect", "redirect": {"return_url": return_url}}
    session = gateway.portal_session_create(
        customer=workspace.stripe_customer_id, return_url=return_url, flow_data=flow
    )
    return session["url"]


def _plan_change_flow(*, workspace: Workspace, plan_key: str, seats: int | None) -> dict[str, Any]:
    """The portal flow that confirms moving the workspace's subscription to ``plan_key`` × ``seats``."""
    plan = Plan.objects.filter(key=plan_key, is_active=True).first()
    if plan is None:
        raise InvalidRequest(f"There is no plan called {plan_key!r}.", field="plan")
    if plan.is_free:
        raise InvalidRequest("To move to Free, cancel the subscription in the billing portal.", field="plan")
    subscription = Subscription.objects.filter(workspace=workspace).first()
    if subscription is None or not subscription.is_live:
        raise InvalidRequest("This workspace has no subscription to change: choose a plan to subscribe.", field="plan")
    current = gateway.subscription_retrieve(subscription.stripe_subscription_id)
    items = (current.get("items") or {}).get("data") or []
    if len(items) != 1:
        raise InvalidRequest("This subscription cannot be changed here: manage it in the billing portal.", field="plan")
    item = items[0]
    if not plan.per_seat:
        seats = 1
    elif seats is None:
        seats = int(item.get("quantity") or 1)
    seats = seats_checked(seats)
    price_id = stripe_price_id(plan_lookup_key(plan.key), expected_cents=plan.price_cents)
    billed_price = item.get("price") or {}
    billed_price = billed_price.get("id") if isinstance(billed_price, dict) else billed_price
    if billed_price == price_id and int(item.get("quantity") or 1) == seats:
        what = f"{plan.name}" + (f" × {seats} seats" if plan.per_seat else "")
        raise InvalidRequest(f"The subscription already bills {what}: it applies from the next renewal.", field="plan")
    return {
        "type": "subscription_update_confirm",
        "subscription_update_confirm": {
            "subscription": current["id"],
            "items": [{"id": item["id"], "price": price_id, "quantity": seats}],
        },
    }
