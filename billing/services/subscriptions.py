"""Plans through Stripe: the subscription, its invoices, and the buckets they pay for.

Every subscription event (the Checkout that started it, ``invoice.paid``, ``invoice.payment_failed``,
``customer.subscription.*``) ends in one place, :func:`subscription_sync`. It reads the subscription
and every invoice it billed from Stripe as they are now, and brings the workspace in line: the
subscription's row, the current period's bucket once the invoice that opens it is paid, the
prorated credits of each upgrade paid within that period, and a purchase for every paid invoice.
Which event comes first, late or twice changes nothing: the books follow Stripe's state, as
Stripe's fulfilment guidance asks.

A period is granted only while it is the subscription's current one: an old period's event that
arrives after the next began grants nothing (its bucket would expire at once). The beat job opens
a renewal's period too (``billing.services.resets``) and falls back to Free when it stays unpaid.

Calls to Stripe (:func:`subscription_billed`) happen before the transaction that writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.bounds import id_parsed
from billing.errors import FulfilmentMismatch
from billing.models import Activity, LedgerEntry, Plan, Purchase, Subscription, Wallet, Workspace
from billing.months import shift_months
from billing.services.accounts import activity_record
from billing.services.ledger_keys import (
    plan_fallback_key,
    plan_join_key,
    plan_restore_expiry_key,
    plan_restore_key,
    plan_upgrade_key,
)
from billing.services.periods import period_begin
from billing.services.verification import workspace_paid
from billing.services.wallets import bucket_expire, entry_post, wallet_lock, wallet_processing_count

logger = logging.getLogger(__name__)

SAME_MOMENT = timedelta(seconds=1)  # Stripe's times are whole seconds
OPENS_A_PERIOD = ("subscription_create", "subscription_cycle")


def ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def plan_from_price(price: dict[str, Any]) -> Plan:
    """The plan a Stripe price bills for, by its lookup key or (renamed keys) its metadata."""
    key = (price.get("metadata") or {}).get("plan") or ""
    lookup = price.get("lookup_key") or ""
    if not key and lookup.startswith("sigora_plan_"):
        key = lookup.removeprefix("sigora_plan_")
    plan = Plan.objects.filter(key=key).first()
    if plan is None:
        raise FulfilmentMismatch(f"Stripe price {price.get('id')} is not one of the catalog's plans.")
    return plan


# --- What Stripe bills ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    plan: Plan
    seats: int
    amount: int
    proration: bool
    start: datetime
    end: datetime

    @property
    def allowance(self) -> int:
        return self.plan.allowance_for(self.seats)


@dataclass(frozen=True)
class BilledInvoice:
    invoice: dict[str, Any]
    lines: list[InvoiceLine]

    @property
    def id(self) -> str:
        return self.invoice["id"]

    @property
    def reason(self) -> str:
        return self.invoice.get("billing_reason") or ""

    @property
    def paid(self) -> bool:
        return self.invoice.get("status") == "paid"

    @property
    def receipt_url(self) -> str:
        return self.invoice.get("hosted_invoice_url") or ""

    @property
    def plan_line(self) -> InvoiceLine | None:
        """The line that bills a whole period (not a proration), for an invoice that opens one."""
        return next((line for line in self.lines if not line.proration), self.lines[0] if self.lines else None)

    @property
    def bought_line(self) -> InvoiceLine | None:
        """What the invoice bought: a change's remaining time on the new plan (its unused time on the old one
        is listed first), else the plan line."""
        changed_to = next((line for line in self.lines if line.proration and line.amount > 0), None)
        return changed_to if self.reason == "subscription_update" and changed_to else self.plan_line


@dataclass(frozen=True)
class Billed:
    """A subscription as Stripe has it now, and every invoice it billed, oldest first."""

    subscription: dict[str, Any]
    invoices: list[BilledInvoice]

    def invoice(self, invoice_id: str) -> BilledInvoice | None:
        return next((billed for billed in self.invoices if billed.id == invoice_id), None)


def _invoice_lines(invoice: dict[str, Any]) -> list[InvoiceLine]:
    lines = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        pricing = line.get("pricing") or {}
        price = (pricing.get("price_details") or {}).get("price") or line.get("price")
        if isinstance(price, str):
            price = gateway.price_retrieve(price)
        if not price:
            continue
        parent = line.get("parent") or {}
        item_details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
        period = line.get("period") or {}
        lines.append(
            InvoiceLine(
                plan=plan_from_price(price),
                seats=int(line.get("quantity") or 1),
                amount=int(line.get("amount") or 0),
                proration=bool(item_details.get("proration") or line.get("proration")),
                start=ts(period.get("start")) or timezone.now(),
                end=ts(period.get("end")) or timezone.now(),
            )
        )
    return lines


def subscription_billed(subscription_id: str) -> Billed:
    """Read the subscription and its invoices from Stripe (before any transaction: no lock waits on it)."""
    subscription = gateway.subscription_retrieve(subscription_id)
    invoices = []
    for invoice in gateway.subscription_invoices(subscription_id):
        if (invoice.get("lines") or {}).get("has_more"):
            invoice = gateway.invoice_retrieve(invoice["id"])  # the list shows the first lines only
        invoices.append(BilledInvoice(invoice, _invoice_lines(invoice)))
    invoices.sort(key=lambda billed: (billed.invoice.get("created") or 0, billed.id))
    return Billed(subscription, invoices)


# --- The subscription's row ---------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionState:
    plan: Plan
    seats: int
    status: str
    current_period_start: datetime
    current_period_end: datetime
    anchor: datetime


def _subscription_item(subscription: dict[str, Any]) -> dict[str, Any]:
    items = (subscription.get("items") or {}).get("data") or []
    if not items:
        raise FulfilmentMismatch(f"Subscription {subscription.get('id')} has no items.")
    return items[0]


def _subscription_store(*, workspace_id: int, subscription: dict[str, Any], now: datetime) -> SubscriptionState:
    """Record what Stripe bills now; the workspace's own plan changes only when a period or upgrade is paid."""
    item = _subscription_item(subscription)
    plan = plan_from_price(item["price"])
    seats = int(item.get("quantity") or 1)
    # Since API 2025-03-31 the period lives on the item; older shapes kept it on the subscription.
    start = ts(item.get("current_period_start") or subscription.get("current_period_start"))
    end = ts(item.get("current_period_end") or subscription.get("current_period_end"))
    if start is None or end is None:
        raise FulfilmentMismatch(f"Subscription {subscription.get('id')} has no current period.")
    status = subscription.get("status") or ""
    existing = Subscription.objects.select_for_update().filter(workspace_id=workspace_id).first()
    past_due_since = existing.past_due_since if existing else None
    if status in ("past_due", "unpaid"):
        past_due_since = past_due_since or now
    elif status in ("active", "trialing", "canceled"):
        past_due_since = None
    Subscription.objects.update_or_create(
        workspace_id=workspace_id,
        defaults={
            "stripe_subscription_id": subscription["id"],
            "status": status,
            "plan": plan,
            "seats": seats,
            "current_period_start": start,
            "current_period_end": end,
            "cancel_at_period_end": bool(subscription.get("cancel_at_period_end")),
            "past_due_since": past_due_since,
            "updated_at": now,
        },
    )
    anchor = ts(subscription.get("billing_cycle_anchor")) or start
    return SubscriptionState(plan, seats, status, start, end, anchor)


# --- Bringing the workspace in line --------------------------------------------------------------


def subscription_sync(
    *, workspace: Workspace, billed: Billed, now: datetime, checkout: Purchase | None = None
) -> SubscriptionState | None:
    """Make the workspace's books what Stripe's subscription and invoices say now (inside a transaction).

    ``checkout``: the purchase whose Checkout started the subscription, when its session is known.
    """
    current = billed.subscription
    known = Subscription.objects.select_for_update().filter(workspace=workspace).first()
    if known is not None and known.stripe_subscription_id != current["id"] and current.get("status") == "canceled":
        return None  # an old subscription ended after a newer one began: nothing to change
    state = _subscription_store(workspace_id=workspace.pk, subscription=current, now=now)
    if state.status == "canceled":
        for paid in (billed_invoice for billed_invoice in billed.invoices if billed_invoice.paid):
            _purchase_paid(workspace=workspace, billed=billed, paid=paid, credits=None, now=now, checkout=checkout)
        _subscription_ended(workspace=workspace, subscription=current, now=now)
        return state
    opened, joined = _period_open(workspace=workspace, billed=billed, state=state, now=now)
    for paid in (billed_invoice for billed_invoice in billed.invoices if billed_invoice.paid):
        if paid.reason == "subscription_update":
            _upgrade_grant(workspace=workspace, billed=billed, paid=paid, opened=opened, state=state, now=now)
        else:
            credits = joined if opened is not None and paid.id == opened.id else None
            _purchase_paid(workspace=workspace, billed=billed, paid=paid, credits=credits, now=now, checkout=checkout)
    return state


def _opening_invoice(billed: Billed, state: SubscriptionState) -> BilledInvoice | None:
    """The invoice that bills the current period as a whole (the first one, or a renewal)."""
    for candidate in billed.invoices:
        line = candidate.plan_line
        if candidate.reason in OPENS_A_PERIOD and line and abs(line.start - state.current_period_start) < SAME_MOMENT:
            return candidate
    return None


def _period_open(
    *, workspace: Workspace, billed: Billed, state: SubscriptionState, now: datetime
) -> tuple[BilledInvoice | None, int | None]:
    """The current period's bucket, once the invoice that opens it is paid: that invoice (None if unpaid), and
    the credits it granted if it joined the workspace's current period rather than opening one."""
    opening = _opening_invoice(billed, state)
    if opening is None or not opening.paid:
        return None, None  # not paid yet: the beat job opens the period, and falls back to Free three days on
    line = opening.plan_line
    joined = _period_join(workspace=workspace, opening=opening, line=line, state=state, now=now)
    if joined is not None:
        return opening, joined
    grant = period_begin(
        workspace_id=workspace.pk,
        start=line.start,
        end=line.end,
        plan=line.plan,
        seats=line.seats,
        now=now,
        external_ref=opening.id,
        reason=f"{line.plan.name} plan: monthly credits",
        receipt_url=opening.receipt_url,
        anchor=state.anchor,
    )
    if grant is None:
        _fallback_restore(workspace=workspace, invoice=opening.invoice, line=line, now=now)
    return opening, None


def _period_join(
    *, workspace: Workspace, opening: BilledInvoice, line: InvoiceLine, state: SubscriptionState, now: datetime
) -> int | None:
    """A first invoice billed up to the end of the workspace's current period joins that period; the credits.

    A workspace on a paid plan without a subscription (the demo, a plan staff set) that subscribes keeps its
    period and its bucket: Checkout anchors the subscription's billing at the period's end, so Stripe bills
    the new plan for the time left (``plan_checkout_start``). That invoice grants its plan's allowance for
    the same share of the period, on top of the bucket, and moves the workspace to its plan now; the
    renewal at the anchor opens the next period as usual. None if this invoice opens a period of its own.
    """
    if opening.reason != "subscription_create":
        return None
    key = plan_join_key(opening.id)
    wallet = wallet_lock(workspace_id=workspace.pk)
    done = LedgerEntry.objects.filter(workspace=workspace, idempotency_key=key).first()
    if done is not None:
        return done.plan_delta
    ends_with_it = abs(line.end - wallet.period_end) < SAME_MOMENT
    if not ends_with_it or not wallet.period_start + SAME_MOMENT < line.start < line.end:
        return None
    length = int((wallet.period_end - wallet.period_start).total_seconds())
    credits = line.allowance * int((line.end - line.start).total_seconds()) // length
    seats = f" × {line.seats} seats" if line.plan.per_seat else ""
    wallet.period_allowance += credits
    wallet.period_anchor = state.anchor  # renewals from the anchor on, as Stripe bills them
    entry_post(
        wallet,
        kind=LedgerEntry.Kind.PLAN_GRANT,
        plan_delta=credits,
        idempotency_key=key,
        reason=f"{line.plan.name} plan{seats}: credits for the rest of this period",
        external_ref=opening.id,
        now=now,
        metadata={"plan": line.plan.key, "seats": line.seats, "receipt_url": opening.receipt_url},
    )
    Workspace.objects.filter(pk=workspace.pk).update(plan=line.plan, seats=line.seats)
    return credits


def _fallback_restore(*, workspace: Workspace, invoice: dict[str, Any], line: InvoiceLine, now: datetime):
    """A renewal paid after the workspace fell back to Free (three days unpaid): the paid bucket returns."""
    wallet = wallet_lock(workspace_id=workspace.pk)
    workspace.refresh_from_db(fields=["plan", "seats"])
    fell_back = LedgerEntry.objects.filter(
        workspace=workspace, idempotency_key=plan_fallback_key(wallet.period_start)
    ).exists()
    restored = LedgerEntry.objects.filter(workspace=workspace, idempotency_key=plan_restore_key(invoice["id"]))
    if not fell_back or restored.exists() or line.plan.is_free or abs(wallet.period_start - line.start) > SAME_MOMENT:
        return None
    bucket_expire(
        wallet,
        idempotency_key=plan_restore_expiry_key(invoice["id"]),
        reason="Renewal paid: the Free stand-in credits are replaced",
        now=now,
    )
    allowance = line.allowance
    wallet.period_allowance = allowance
    entry = entry_post(
        wallet,
        kind=LedgerEntry.Kind.PLAN_GRANT,
        plan_delta=allowance,
        idempotency_key=plan_restore_key(invoice["id"]),
        reason=f"{line.plan.name} plan: monthly credits (renewal paid late)",
        external_ref=invoice["id"],
        now=now,
        metadata={"plan": line.plan.key, "seats": line.seats, "receipt_url": invoice.get("hosted_invoice_url") or ""},
    )
    Workspace.objects.filter(pk=workspace.pk).update(plan=line.plan, seats=line.seats)
    return entry


def _upgrade_grant(
    *,
    workspace: Workspace,
    billed: Billed,
    paid: BilledInvoice,
    opened: BilledInvoice | None,
    state: SubscriptionState,
    now: datetime,
) -> None:
    """A paid plan or seat change: the new allowance less the old, for the part of the period left, as Stripe
    prorates the money; granted once, and only into the current period once it is open."""
    added = [line for line in paid.lines if line.proration and line.amount > 0]
    removed = [line for line in paid.lines if line.proration and line.amount < 0]
    if not added:
        return
    new = added[0]
    old = removed[0] if removed else (opened.plan_line if opened else None)
    credits = 0
    start, end = state.current_period_start, state.current_period_end
    if opened is not None and old is not None and new.allowance > old.allowance and start <= new.start < end:
        total, left = int((end - start).total_seconds()), int((end - new.start).total_seconds())
        credits = (new.allowance - old.allowance) * left // total
    purchase = _purchase_paid(workspace=workspace, billed=billed, paid=paid, credits=credits, now=now)
    if purchase is None or not credits:
        return
    wallet = wallet_lock(workspace_id=workspace.pk)
    key = plan_upgrade_key(paid.id)
    if LedgerEntry.objects.filter(workspace=workspace, idempotency_key=key).exists():
        return
    wallet.period_allowance += credits
    entry_post(
        wallet,
        kind=LedgerEntry.Kind.PLAN_GRANT,
        plan_delta=credits,
        idempotency_key=key,
        reason=f"Upgrade to {new.plan.name}"
        + (f" × {new.seats} seats" if new.plan.per_seat else "")
        + ": credits for the rest of the period",
        external_ref=paid.id,
        now=now,
        metadata={
            "purchase": purchase.pk,
            "plan": new.plan.key,
            "seats": new.seats,
            "from": old.allowance,
            "receipt_url": paid.receipt_url,
        },
    )
    workspace.refresh_from_db(fields=["plan", "seats"])
    if new.allowance > workspace.plan.allowance_for(workspace.seats):
        Workspace.objects.filter(pk=workspace.pk).update(plan=new.plan, seats=new.seats)
    activity_record(
        workspace=workspace, actor=None, verb=Activity.Verb.PLAN_CHANGED, detail=f"upgraded to {new.plan.name}"
    )


_PURCHASE_KINDS = {
    "subscription_create": Purchase.Kind.SUBSCRIPTION,
    "subscription_cycle": Purchase.Kind.RENEWAL,
    "subscription_update": Purchase.Kind.UPGRADE,
}


def _purchase_paid(
    *,
    workspace: Workspace,
    billed: Billed,
    paid: BilledInvoice,
    credits: int | None,
    now: datetime,
    checkout: Purchase | None = None,
) -> Purchase | None:
    """The purchase a paid invoice stands for, marked paid once: a renewal or plan change gets its own; the
    first invoice belongs to the Checkout purchase that started the subscription."""
    kind = _PURCHASE_KINDS.get(paid.reason)
    line, bought = paid.plan_line, paid.bought_line
    if kind is None or line is None or bought is None:
        return None
    workspace_paid(workspace_id=workspace.pk)  # a paying workspace is never locked behind email verification
    purchase = Purchase.objects.select_for_update().filter(stripe_invoice_id=paid.id).first()
    if purchase is None and kind == Purchase.Kind.SUBSCRIPTION:
        # Not linked yet (its session not fulfilled): the subscription's metadata names it.
        named = id_parsed((billed.subscription.get("metadata") or {}).get("purchase_id"))
        candidate = checkout or (Purchase.objects.filter(pk=named).first() if named else None)
        if candidate is not None and candidate.workspace_id == workspace.pk and candidate.kind == kind:
            purchase = Purchase.objects.select_for_update().get(pk=candidate.pk)
    if purchase is None:
        purchase = Purchase.objects.create(
            workspace=workspace,
            kind=kind,
            plan=bought.plan,
            seats=bought.seats,
            stripe_invoice_id=paid.id,
            amount_cents=int(paid.invoice.get("amount_paid") or 0),
            currency=(paid.invoice.get("currency") or settings.STRIPE_CURRENCY).lower(),
            credits=line.allowance if credits is None else credits,
        )
        purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
    if purchase.status != Purchase.Status.PAID:
        if purchase.status == Purchase.Status.PROCESSING:  # a bank debit that has now cleared
            wallet_processing_count(workspace.pk, -1)
        purchase.status = Purchase.Status.PAID
        purchase.paid_at = now
        purchase.stripe_invoice_id = paid.id
        purchase.receipt_url = paid.receipt_url
        purchase.period_start, purchase.period_end = bought.start, bought.end  # the billing history names them
        if credits is not None:
            purchase.credits = credits
        purchase.save()
    return purchase


def _subscription_ended(*, workspace: Workspace, subscription: dict[str, Any], now: datetime) -> None:
    """Back to Free from the end of what was paid for: at once if that moment has passed.

    A subscription cancelled mid-period keeps its bucket until the wallet's period ends; the
    reset job then opens the Free period (the workspace has no live subscription any more).
    """
    wallet = Wallet.objects.get(workspace=workspace)
    ended = ts(subscription.get("ended_at")) or now
    start = max(ended, wallet.period_end)
    # Stripe's word that the subscription ended is final, even a little ahead of this clock.
    if start > max(now, ended):
        return
    local = start.astimezone(workspace.zone)
    granted = period_begin(
        workspace_id=workspace.pk,
        start=local,
        end=shift_months(local, 1),
        plan=Plan.objects.get(key="free"),
        seats=1,
        now=now,
        external_ref=subscription["id"],
        reason="Subscription ended: Free plan credits",
        anchor=local,
    )
    if granted is not None:
        activity_record(workspace=workspace, actor=None, verb=Activity.Verb.PLAN_CHANGED, detail="moved to Free")


def subscription_lost(*, workspace: Workspace, now: datetime) -> Subscription | None:
    """Stripe has no record of the workspace's subscription any more (the offline double forgets everything when
    it restarts): record it as ended. The books stay as they are: the period paid for runs to its end, then the
    reset job, or a new subscription, takes over."""
    known = Subscription.objects.filter(workspace=workspace).first()
    if known is None or gateway.subscription_find(known.stripe_subscription_id) is not None:
        return None
    # Asked before writing (no lock waits on Stripe); a newer subscription recorded since is left alone.
    Subscription.objects.filter(pk=known.pk, stripe_subscription_id=known.stripe_subscription_id).update(
        status="canceled", cancel_at_period_end=False, past_due_since=None, updated_at=now
    )
    logger.warning(
        "workspace %s: Stripe has no subscription %s; recorded as ended", workspace.pk, known.stripe_subscription_id
    )
    known.refresh_from_db()
    return known


# --- The events --------------------------------------------------------------------------------


def _workspace_for_customer(customer: str | dict | None) -> Workspace | None:
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    return Workspace.objects.filter(stripe_customer_id=customer_id).first() if customer_id else None


def _invoice_subscription_id(invoice: dict[str, Any]) -> str:
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    found = details.get("subscription") or invoice.get("subscription") or ""
    return found.get("id", "") if isinstance(found, dict) else found


def _synced(customer: str | dict | None, subscription_id: str, now: datetime | None) -> Workspace | None:
    workspace = _workspace_for_customer(customer)
    if workspace is None or not subscription_id:
        logger.warning("subscription %s: no workspace for customer %s", subscription_id, customer)
        return None
    billed = subscription_billed(subscription_id)
    with transaction.atomic():
        subscription_sync(workspace=workspace, billed=billed, now=now or timezone.now())
    return workspace


def subscription_changed(*, subscription: dict[str, Any], now: datetime | None = None) -> Subscription | None:
    """``customer.subscription.*``."""
    workspace = _synced(subscription.get("customer"), subscription["id"], now)
    return None if workspace is None else Subscription.objects.filter(workspace=workspace).first()


def invoice_paid(*, invoice: dict[str, Any], now: datetime | None = None) -> Purchase | None:
    """``invoice.paid``: a period's bucket (the first invoice or a renewal) or an upgrade's prorated credits."""
    workspace = _synced(invoice.get("customer"), _invoice_subscription_id(invoice), now)
    return None if workspace is None else Purchase.objects.filter(stripe_invoice_id=invoice["id"]).first()


def invoice_payment_failed(*, invoice: dict[str, Any], now: datetime | None = None) -> Subscription | None:
    """A renewal (or upgrade) could not be charged: Stripe marks the subscription past due, and so do we."""
    workspace = _synced(invoice.get("customer"), _invoice_subscription_id(invoice), now)
    return None if workspace is None else Subscription.objects.filter(workspace=workspace).first()
