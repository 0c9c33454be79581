"""Checkout: buying a top-up pack or a first plan through Stripe Checkout, and fulfilling it once paid.

Stripe's fulfilment guidance, followed here: credits arrive only once Stripe reports the money
(``payment_status == "paid"``), fulfilment is idempotent per Checkout Session whoever asks first
(the webhook, the buyer landing back, the reconciliation job), and events are snapshots, so the
session is read from Stripe again before anything is written. The subscription a plan's Checkout
starts is kept in step by ``subscriptions``; money going back by ``refunds``; the off-session
payments of auto top-up by ``auto_topup``.

Lock order, everywhere in payments: the purchase row, then the wallet (``wallet_lock``). Calls to
Stripe happen before the transaction that writes, so no row lock waits on the network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.bounds import fits_column, id_parsed
from billing.errors import BillingError, FulfilmentMismatch, InvalidRequest, MissingInStripe
from billing.models import Activity, LedgerEntry, Plan, Purchase, Subscription, TopUpPack, Wallet, Workspace
from billing.months import shift_months
from billing.services.accounts import activity_record
from billing.services.cards import payment_method_paid_with
from billing.services.ledger_keys import top_up_key
from billing.services.refunds import money_back, reversal_sync
from billing.services.stripe_catalog import pack_lookup_key, plan_lookup_key, stripe_price_id
from billing.services.subscriptions import Billed, subscription_billed, subscription_sync
from billing.services.verification import workspace_paid
from billing.services.wallets import entry_post, wallet_lock, wallet_processing_count

logger = logging.getLogger(__name__)

MAX_SEATS = 500
# Stripe lets a Checkout Session live from 30 minutes to 24 hours; a margin each side for clocks that differ.
MIN_CHECKOUT_LIFETIME = timedelta(minutes=35)
CHECKOUT_LIFETIME = timedelta(hours=23)


def seats_checked(seats: object) -> int:
    """A number of seats a per-seat plan may be bought or changed to (a plan's checkout, the portal's change)."""
    if not isinstance(seats, int) or isinstance(seats, bool) or not 1 <= seats <= MAX_SEATS:
        raise InvalidRequest(f"Seats must be a whole number from 1 to {MAX_SEATS}.", field="seats")
    return seats


# --- Starting a checkout --------------------------------------------------------------------------


def customer_ensure(*, workspace_id: int, user: AbstractBaseUser, fresh: bool = False) -> str:
    """The workspace's Stripe customer id, creating the customer at the first purchase."""
    workspace = Workspace.objects.get(pk=workspace_id)
    if workspace.stripe_customer_id:
        return workspace.stripe_customer_id
    # The key makes two racing first purchases create one customer on Stripe's side too.
    customer = gateway.customer_create(
        email=getattr(user, "email", ""),
        name=workspace.name,
        metadata={"workspace_id": str(workspace.pk)},
        idempotency_key=f"sigora-customer-{workspace.pk}" + ("-again" if fresh else ""),
    )
    Workspace.objects.filter(pk=workspace.pk, stripe_customer_id__isnull=True).update(stripe_customer_id=customer["id"])
    workspace.refresh_from_db(fields=["stripe_customer_id"])
    return workspace.stripe_customer_id or customer["id"]


def _success_url(base: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}session_id={{CHECKOUT_SESSION_ID}}"


def topup_checkout_start(
    *, workspace: Workspace, pack_key: str, user: AbstractBaseUser, return_url: str, cancel_url: str
) -> tuple[Purchase, str]:
    """A Checkout Session for a top-up pack: the purchase (pending) and the address to send the buyer to."""
    pack = TopUpPack.objects.filter(key=pack_key, is_active=True).first()
    if pack is None:
        raise InvalidRequest(f"There is no top-up pack called {pack_key!r}.", field="pack")
    price_id = stripe_price_id(pack_lookup_key(pack.key), expected_cents=pack.price_cents)
    customer = customer_ensure(workspace_id=workspace.pk, user=user)
    purchase = Purchase.objects.create(
        workspace=workspace,
        kind=Purchase.Kind.TOP_UP,
        pack=pack,
        amount_cents=pack.price_cents,
        currency=settings.STRIPE_CURRENCY,
        credits=pack.amount,
        created_by=user,
    )
    metadata = {"workspace_id": str(workspace.pk), "purchase_id": str(purchase.pk), "pack": pack.key}
    session = _checkout_create(
        workspace=workspace,
        user=user,
        purchase=purchase,
        params={
            "mode": "payment",
            "customer": customer,
            "client_reference_id": str(workspace.pk),
            "line_items": [{"price": price_id, "quantity": 1}],
            "success_url": _success_url(return_url),
            "cancel_url": cancel_url,
            "metadata": metadata,
            # Saved for off-session use: auto top-up charges this card later.
            "payment_intent_data": {"setup_future_usage": "off_session", "metadata": metadata},
        },
    )
    return _session_attach(purchase, session)


def plan_checkout_start(
    *, workspace: Workspace, plan_key: str, seats: int, user: AbstractBaseUser, return_url: str, cancel_url: str
) -> tuple[Purchase, str]:
    """A Checkout Session that starts a subscription (Free → a paid plan)."""
    plan = Plan.objects.filter(key=plan_key, is_active=True).first()
    if plan is None:
        raise InvalidRequest(f"There is no plan called {plan_key!r}.", field="plan")
    if plan.is_free:
        raise InvalidRequest("The Free plan needs no checkout: cancel the subscription instead.", field="plan")
    if not plan.per_seat:
        seats = 1
    seats = seats_checked(seats)
    current = Subscription.objects.filter(workspace=workspace).first()
    if current is not None and current.is_live:
        raise InvalidRequest(
            "This workspace already has a subscription: change plan or seats in the billing portal.", field="plan"
        )
    price_id = stripe_price_id(plan_lookup_key(plan.key), expected_cents=plan.price_cents)
    anchor = period_end_anchor(workspace=workspace, now=timezone.now())
    customer = customer_ensure(workspace_id=workspace.pk, user=user)
    purchase = Purchase.objects.create(
        workspace=workspace,
        kind=Purchase.Kind.SUBSCRIPTION,
        plan=plan,
        seats=seats,
        amount_cents=plan.price_cents * seats,
        currency=settings.STRIPE_CURRENCY,
        credits=plan.allowance_for(seats),
        created_by=user,
    )
    metadata = {"workspace_id": str(workspace.pk), "purchase_id": str(purchase.pk), "plan": plan.key}
    # The first invoice can be paid (and its event arrive) before this session is fulfilled.
    subscription_data: dict[str, Any] = {
        "metadata": {"workspace_id": str(workspace.pk), "purchase_id": str(purchase.pk)}
    }
    params: dict[str, Any] = {}
    if anchor is not None:
        # Billed up to the current period's end, then monthly from there: the period and its bucket stay.
        subscription_data |= {"billing_cycle_anchor": anchor, "proration_behavior": "create_prorations"}
        # Paid after the anchor, Checkout would bill a whole period from it: close the session before then.
        params["expires_at"] = min(anchor, int((timezone.now() + CHECKOUT_LIFETIME).timestamp()))
        metadata["billing_cycle_anchor"] = str(anchor)
    session = _checkout_create(
        workspace=workspace,
        user=user,
        purchase=purchase,
        params={
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": str(workspace.pk),
            "line_items": [{"price": price_id, "quantity": seats}],
            "success_url": _success_url(return_url),
            "cancel_url": cancel_url,
            "metadata": metadata,
            "subscription_data": subscription_data,
            **params,
        },
    )
    if anchor is not None:  # what Checkout charges today: the time left of the period (credits follow once paid)
        purchase.amount_cents = int(session.get("amount_total") or 0)
        purchase.save(update_fields=["amount_cents"])
    return _session_attach(purchase, session)


def period_end_anchor(*, workspace: Workspace, now: datetime) -> int | None:
    """Where a new subscription's billing starts for a workspace on a paid plan without one: the end of its
    current period (a unix time), so that period and its bucket are kept; None to start a period now.

    Checkout needs the anchor at least half an hour ahead (a session lives that long at the least) and
    before the first natural renewal; a period that ends sooner simply ends, and the subscription opens
    the next one.
    """
    if workspace.plan.is_free:
        return None
    end = Wallet.objects.filter(workspace=workspace).values_list("period_end", flat=True).first()
    if end is None or end - now < MIN_CHECKOUT_LIFETIME or end >= shift_months(now, 1):
        return None
    return int(end.timestamp())


def _checkout_create(
    *, workspace: Workspace, user: AbstractBaseUser, purchase: Purchase, params: dict[str, Any]
) -> dict[str, Any]:
    """Create the session; if Stripe no longer knows the saved customer, make a new one and retry once."""
    try:
        return gateway.checkout_session_create(params, idempotency_key=f"sigora-checkout-{purchase.pk}")
    except MissingInStripe as exc:
        if exc.param != "customer":
            raise
    logger.warning("workspace %s: Stripe lost customer %s; creating a new one", workspace.pk, params["customer"])
    Workspace.objects.filter(pk=workspace.pk, stripe_customer_id=params["customer"]).update(stripe_customer_id=None)
    params = {**params, "customer": customer_ensure(workspace_id=workspace.pk, user=user, fresh=True)}
    return gateway.checkout_session_create(params, idempotency_key=f"sigora-checkout-{purchase.pk}-retry")


def _session_attach(purchase: Purchase, session: dict[str, Any]) -> tuple[Purchase, str]:
    purchase.stripe_checkout_session_id = session["id"]
    purchase.save(update_fields=["stripe_checkout_session_id"])
    return purchase, session["url"]


# --- Checkout fulfilment --------------------------------------------------------------------------


def checkout_return(*, workspace: Workspace, session_id: str, now: datetime | None = None) -> Purchase:
    """The buyer landed back from Checkout: fulfil now if Stripe says it is paid (the webhook may lag)."""
    purchase = None
    if fits_column(session_id, Purchase, "stripe_checkout_session_id"):
        purchase = Purchase.objects.filter(workspace=workspace, stripe_checkout_session_id=session_id).first()
    if purchase is None:
        # Someone else's session, or made up: indistinguishable on purpose.
        raise InvalidRequest("That checkout does not belong to this workspace.", field="session_id")
    if purchase.status in (Purchase.Status.PENDING, Purchase.Status.PROCESSING):
        checkout_fulfil(session=gateway.checkout_session_retrieve(session_id), now=now)
        purchase.refresh_from_db()
    return purchase


def _purchase_for_session(session: dict[str, Any]) -> Purchase | None:
    purchase = Purchase.objects.filter(stripe_checkout_session_id=session["id"]).first()
    if purchase is not None:
        return purchase
    # Created on Stripe but never linked here (the process died between the two): the metadata links it.
    metadata = session.get("metadata") or {}
    purchase_id = id_parsed(metadata.get("purchase_id"))
    if purchase_id is None:
        return None
    linked = Purchase.objects.filter(
        pk=purchase_id, workspace_id=metadata.get("workspace_id"), stripe_checkout_session_id__isnull=True
    ).update(stripe_checkout_session_id=session["id"])
    return Purchase.objects.filter(stripe_checkout_session_id=session["id"]).first() if linked else None


def checkout_fulfil(*, session: dict[str, Any], now: datetime | None = None) -> Purchase | None:
    """Grant what a Checkout Session paid for, once; None if the session is not one of ours."""
    now = now or timezone.now()
    purchase = _purchase_for_session(session)
    if purchase is None:
        logger.warning("checkout session %s matches no purchase: ignored", session.get("id"))
        return None
    if purchase.status == Purchase.Status.PAID:
        return purchase
    paid = session.get("status") == "complete" and session.get("payment_status") in ("paid", "no_payment_required")
    # Stripe first, outside the transaction: what a paid session bought.
    details: dict[str, Any] = {}
    billed: Billed | None = None
    if paid:
        _check_amount(purchase, session)
        if purchase.kind == Purchase.Kind.SUBSCRIPTION:
            billed = subscription_billed(session["subscription"])
        else:
            details = payment_details(session.get("payment_intent"))

    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if purchase.status == Purchase.Status.PAID:
            return purchase
        if session.get("status") == "expired":
            if purchase.status == Purchase.Status.PENDING:
                purchase.status = Purchase.Status.EXPIRED
                purchase.save(update_fields=["status"])
            return purchase
        if not paid:
            if session.get("status") == "complete" and purchase.status == Purchase.Status.PENDING:
                purchase.status = Purchase.Status.PROCESSING  # a delayed method (bank debit) still settling
                purchase.save(update_fields=["status"])
                wallet_processing_count(purchase.workspace_id, +1)
            return purchase
        if purchase.kind == Purchase.Kind.SUBSCRIPTION:
            # Its first invoice is what was paid: marked paid, and the period opened, as Stripe has them now.
            assert billed is not None
            subscription_sync(workspace=purchase.workspace, billed=billed, now=now, checkout=purchase)
            purchase.refresh_from_db()
            plan = purchase.plan.name if purchase.plan else "a plan"
            activity_record(
                workspace=purchase.workspace,
                actor=purchase.created_by,
                verb=Activity.Verb.PLAN_CHANGED,
                detail=f"subscribed to {plan}",
            )
        else:
            was_processing = purchase.status == Purchase.Status.PROCESSING
            purchase.stripe_payment_intent_id = session.get("payment_intent") or purchase.stripe_payment_intent_id
            pack_paid(
                purchase,
                payment_id=session["id"],
                reason=f"Top-up pack: {purchase.pack}",
                actor=purchase.created_by,
                details=details,
                now=now,
            )
            if was_processing:
                wallet_processing_count(purchase.workspace_id, -1)
            activity_record(
                workspace=purchase.workspace,
                actor=purchase.created_by,
                verb=Activity.Verb.TOP_UP,
                detail=f"bought {purchase.pack}",
            )
    logger.info("checkout %s fulfilled: purchase=%s workspace=%s", session["id"], purchase.pk, purchase.workspace_id)
    return purchase


def pack_paid(
    purchase: Purchase,
    *,
    payment_id: str,
    reason: str,
    details: dict[str, Any],
    now: datetime,
    actor: AbstractBaseUser | None = None,
) -> None:
    """A paid pack's credits into its wallet, and the purchase marked paid (a Checkout Session's or an
    auto top-up's PaymentIntent: ``payment_id``). Money Stripe already gave back (``details["back"]``:
    refunded or disputed before this ran) is taken back at once. Runs in the caller's transaction,
    with the purchase locked."""
    workspace_paid(workspace_id=purchase.workspace_id)  # paid credits are never locked behind email verification
    wallet = wallet_lock(workspace_id=purchase.workspace_id)
    entry_post(
        wallet,
        kind=LedgerEntry.Kind.TOP_UP,
        topup_delta=purchase.credits,
        idempotency_key=top_up_key(payment_id),
        reason=reason,
        external_ref=payment_id,
        actor=actor,
        now=now,
        metadata={"purchase": purchase.pk, "receipt_url": details.get("receipt_url", "")},
    )
    purchase.status = Purchase.Status.PAID
    purchase.paid_at = now
    purchase.stripe_charge_id = details.get("charge", "")
    purchase.receipt_url = details.get("receipt_url", "")
    purchase.save()
    if details.get("back") is not None:
        reversal_sync(purchase_id=purchase.pk, back=details["back"], now=now)
        purchase.refresh_from_db()  # the reversal changed its status


def checkout_payment_failed(*, session: dict[str, Any]) -> Purchase | None:
    """A delayed payment (bank debit) failed: nothing was granted, and now nothing will be."""
    purchase = _purchase_for_session(session)
    if purchase is None:
        return None
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if purchase.status in (Purchase.Status.PENDING, Purchase.Status.PROCESSING):
            if purchase.status == Purchase.Status.PROCESSING:
                wallet_processing_count(purchase.workspace_id, -1)
            purchase.status = Purchase.Status.FAILED
            purchase.failure = "The payment failed."
            purchase.save(update_fields=["status", "failure"])
    return purchase


def _check_amount(purchase: Purchase, session: dict[str, Any]) -> None:
    amount, currency = session.get("amount_total"), (session.get("currency") or "").lower()
    if (session.get("metadata") or {}).get("billing_cycle_anchor") and purchase.plan is not None:
        # Billed up to a period's end: Stripe prorates to the second it bills, at most a whole period.
        whole = purchase.plan.price_cents * purchase.seats
        if isinstance(amount, int) and 0 < amount <= whole and currency == purchase.currency:
            return
    if amount != purchase.amount_cents or currency != purchase.currency:
        raise FulfilmentMismatch(
            f"Checkout {session['id']} was paid {amount} {currency}, but purchase #{purchase.pk} "
            f"asked for {purchase.amount_cents} {purchase.currency}: not granted, check it by hand."
        )


def payment_details(payment_intent_id: str | None) -> dict[str, Any]:
    """The paid charge, its receipt, and what Stripe says is back with the buyer already ("back")."""
    if not payment_intent_id:
        return {}
    intent = gateway.payment_intent_retrieve(payment_intent_id)
    method, customer = intent.get("payment_method"), intent.get("customer")
    as_of = timezone.now()  # the card on file from here; a change Stripe reports later wins
    made_default = bool(intent.get("setup_future_usage") == "off_session" and method and customer)
    if made_default:
        # Checkout saves the card but does not make it the default: auto top-up charges the default.
        gateway.customer_default_card_set(customer=customer, payment_method=method)
    charge_id = intent.get("latest_charge") or ""
    if isinstance(charge_id, dict):
        charge_id = charge_id.get("id", "")
    charge = gateway.charge_retrieve(charge_id) if charge_id else {}
    if charge and customer:  # the billing page shows the card on file: its details are on this charge
        payment_method_paid_with(customer_id=customer, charge=charge, made_default=made_default, as_of=as_of)
    back = money_back(charge) if charge else None
    return {"charge": charge_id, "receipt_url": charge.get("receipt_url") or "", "back": back}


# --- Reconciliation: "paid but no credits" cannot last --------------------------------------------


@dataclass
class ReconcileSummary:
    sessions_seen: int = 0
    fulfilled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def checkouts_reconcile(*, since: datetime | None = None, now: datetime | None = None) -> ReconcileSummary:
    """Fulfil any paid Checkout Session no webhook fulfilled ("paid but no credits" cannot last)."""
    now = now or timezone.now()
    since = since or now - timedelta(hours=settings.STRIPE_RECONCILE_HOURS)
    summary = ReconcileSummary()
    for session in gateway.checkout_sessions_completed(since=int(since.timestamp())):
        summary.sessions_seen += 1
        if session.get("payment_status") not in ("paid", "no_payment_required"):
            continue
        purchase = _purchase_for_session(session)
        if purchase is None or purchase.status == Purchase.Status.PAID:
            continue
        try:
            checkout_fulfil(session=session, now=now)
        except BillingError as exc:
            summary.errors.append(f"{session['id']}: {exc.message}")
            continue
        summary.fulfilled.append(session["id"])
        logger.warning("reconciliation fulfilled checkout %s that no webhook had", session["id"])
    return summary
