"""Stripe webhook events: stored once, handled once, failures kept for a retry.

Twenty deliveries of one event at once all insert-or-ignore the same row; the row's lock then
lets exactly one run the handler while the others wait and find it processed. A handler's
writes run in a savepoint: when it fails they roll back whole, the event is marked failed with
the error, and the caller answers 5xx so Stripe sends it again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.bounds import id_parsed
from billing.models import StripeEvent, Workspace
from billing.services import auto_topup, cards, checkout, refunds, subscriptions

logger = logging.getLogger(__name__)


def _checkout_completed(obj: dict[str, Any], now: datetime) -> Any:
    return checkout.checkout_fulfil(session=obj, now=now)


def _checkout_async_failed(obj: dict[str, Any], now: datetime) -> Any:
    return checkout.checkout_payment_failed(session=obj)


def _invoice_paid(obj: dict[str, Any], now: datetime) -> Any:
    return subscriptions.invoice_paid(invoice=obj, now=now)


def _invoice_failed(obj: dict[str, Any], now: datetime) -> Any:
    return subscriptions.invoice_payment_failed(invoice=obj, now=now)


def _subscription(obj: dict[str, Any], now: datetime) -> Any:
    return subscriptions.subscription_changed(subscription=obj, now=now)


def _refunded(obj: dict[str, Any], now: datetime) -> Any:
    return refunds.charge_refunded(charge=obj, now=now)


def _dispute(obj: dict[str, Any], now: datetime) -> Any:
    return refunds.dispute_changed(dispute=obj, now=now)


def _intent_succeeded(obj: dict[str, Any], now: datetime) -> Any:
    return auto_topup.payment_intent_settled(intent=obj, now=now)


def _intent_failed(obj: dict[str, Any], now: datetime) -> Any:
    return auto_topup.payment_intent_settled(intent=obj, now=now)


def _payment_method_changed(obj: dict[str, Any], now: datetime) -> Any:
    """The card may have changed (the Billing Portal): the customer's payment method is read again."""
    customer = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
    customer = customer.get("id") if isinstance(customer, dict) else customer
    return cards.payment_method_sync(customer_id=customer or "", now=now)


HANDLERS: dict[str, Callable[[dict[str, Any], datetime], Any]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.async_payment_failed": _checkout_async_failed,
    "checkout.session.expired": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "charge.refunded": _refunded,
    # Opened, closed (won or lost), money withdrawn or reinstated: each reads the dispute's state now.
    "charge.dispute.created": _dispute,
    "charge.dispute.closed": _dispute,
    "charge.dispute.funds_withdrawn": _dispute,
    "charge.dispute.funds_reinstated": _dispute,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    # The card on file (the billing page shows it): a new default, a card added, its details updated.
    "customer.updated": _payment_method_changed,
    "payment_method.attached": _payment_method_changed,
    "payment_method.updated": _payment_method_changed,
    "payment_method.automatically_updated": _payment_method_changed,
}


def _workspace_of(obj: dict[str, Any]) -> int | None:
    metadata = obj.get("metadata") or {}
    raw = metadata.get("workspace_id") or obj.get("client_reference_id") or ""
    workspace_id = id_parsed(raw)
    if workspace_id is not None:
        return workspace_id
    customer = obj.get("customer")
    customer = customer.get("id") if isinstance(customer, dict) else customer
    if customer:
        return Workspace.objects.filter(stripe_customer_id=customer).values_list("pk", flat=True).first()
    return None


def stripe_event_record(*, event: dict[str, Any]) -> StripeEvent:
    """Store a verified event once (a unique event id; a second delivery finds the first row)."""
    obj = (event.get("data") or {}).get("object") or {}
    workspace_id = _workspace_of(obj)
    if workspace_id is not None and not Workspace.objects.filter(pk=workspace_id).exists():
        workspace_id = None
    StripeEvent.objects.bulk_create(
        [
            StripeEvent(
                event_id=event["id"],
                type=event.get("type", ""),
                livemode=bool(event.get("livemode")),
                api_version=event.get("api_version") or "",
                stripe_created=datetime.fromtimestamp(int(event.get("created") or 0), tz=UTC),
                object_id=obj.get("id", "") if isinstance(obj, dict) else "",
                payload=event,
                workspace_id=workspace_id,
                status=StripeEvent.Status.RECEIVED if event.get("type") in HANDLERS else StripeEvent.Status.IGNORED,
            )
        ],
        ignore_conflicts=True,
    )
    return StripeEvent.objects.get(event_id=event["id"])


class EventFailed(Exception):
    """A handler failed; the event is marked failed with the error and should be retried."""


def stripe_event_process(*, event_id: str, now: datetime | None = None) -> StripeEvent:
    """Run the event's handler unless it already ran; raise EventFailed if it fails (nothing half-done)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().get(event_id=event_id)
        if row.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
            return row
        row.attempts += 1
        handler = HANDLERS.get(row.type)
        error = ""
        if handler is None:
            row.status = StripeEvent.Status.IGNORED
        else:
            try:
                with transaction.atomic():
                    handler(row.payload["data"]["object"], now)
            except Exception as exc:  # any failure: roll the handler back, keep the error, let Stripe retry
                error = f"{type(exc).__name__}: {exc}"
                logger.error("stripe event %s (%s) failed: %s", row.event_id, row.type, error)
                row.status = StripeEvent.Status.FAILED
                row.error = traceback.format_exc(limit=8)[-4000:]
            else:
                row.status = StripeEvent.Status.PROCESSED
                row.error = ""
                row.processed_at = now
        row.save(update_fields=["status", "error", "attempts", "processed_at"])
    logger.info("stripe event %s %s: %s", row.event_id, row.type, row.status)
    if error:
        raise EventFailed(error)
    return row


def stripe_event_retry(*, event_id: str) -> StripeEvent:
    """Staff re-run a failed event (safe: handlers are idempotent)."""
    with transaction.atomic():
        StripeEvent.objects.filter(event_id=event_id, status=StripeEvent.Status.FAILED).update(
            status=StripeEvent.Status.RECEIVED
        )
    try:
        return stripe_event_process(event_id=event_id)
    except EventFailed:
        return StripeEvent.objects.get(event_id=event_id)
