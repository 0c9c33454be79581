"""Money going back to the buyer: refunds and disputes take back the share of a purchase's credits.

They act on what Stripe says about the charge now, never on the event that told us: events come late,
twice and out of order, a refund can come before the payment's own event, and a dispute opened can
later be won. So each handler, and fulfilment itself, reads the charge (and its disputes) from Stripe,
works out how much of the purchase's money is back with the buyer, and moves the purchase's credits to
match, once: any order of events ends in the same books.

Lock order, as everywhere in payments: the purchase row, then the wallet (``wallet_lock``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.bounds import id_parsed
from billing.models import LedgerEntry, Purchase
from billing.services.ledger_keys import reversal_key, reversal_prefix
from billing.services.wallets import entry_post, wallet_lock

logger = logging.getLogger(__name__)


# Dispute statuses whose money is with the buyer: Stripe withdraws a dispute's amount when it opens
# (inquiries, the warning_* statuses, withdraw nothing) and returns it only when the dispute is won.
_DISPUTE_WITHHOLDS = frozenset({"needs_response", "under_review", "lost"})


@dataclass(frozen=True)
class MoneyBack:
    """What Stripe says went back to the buyer from one charge: refunded, and held by disputes."""

    charge_id: str
    refunded_cents: int = 0
    disputed_cents: int = 0
    dispute_id: str = ""  # the charge's dispute, if it has one (open, won or lost)

    @property
    def cents(self) -> int:
        return self.refunded_cents + self.disputed_cents


def money_back(charge: dict[str, Any]) -> MoneyBack:
    """Read from Stripe (call it before any transaction): the charge as given, its disputes fetched."""
    disputes = gateway.charge_disputes(charge["id"]) if charge.get("disputed") else []
    return MoneyBack(
        charge_id=charge["id"],
        refunded_cents=int(charge.get("amount_refunded") or 0),
        disputed_cents=sum(int(d.get("amount") or 0) for d in disputes if d.get("status") in _DISPUTE_WITHHOLDS),
        dispute_id=disputes[0]["id"] if disputes else "",
    )


@dataclass
class Reversal:
    purchase: Purchase
    credits_removed: int = 0
    shortfall: int = 0
    entry: LedgerEntry | None = field(default=None)


def _purchase_for_charge(charge: dict[str, Any]) -> Purchase | None:
    """The purchase a charge paid for: by the charge or its PaymentIntent once fulfilled, else by the
    purchase its metadata names (copied from the PaymentIntent), which a refund before fulfilment needs."""
    intent = charge.get("payment_intent")
    intent = intent.get("id") if isinstance(intent, dict) else intent
    found = Purchase.objects.filter(stripe_charge_id=charge["id"]).first()
    if found is None and intent:
        found = Purchase.objects.filter(stripe_payment_intent_id=intent).first()
    metadata = charge.get("metadata") or {}
    purchase_id, workspace_id = id_parsed(metadata.get("purchase_id")), id_parsed(metadata.get("workspace_id"))
    if found is None and purchase_id is not None and workspace_id is not None:
        found = Purchase.objects.filter(pk=purchase_id, workspace_id=workspace_id).first()
    return found


def _charge_changed(charge_id: str, *, what: str, now: datetime | None) -> Reversal | None:
    """A refund or dispute moved on a charge: bring its purchase's credits in line with Stripe's state."""
    charge = gateway.charge_retrieve(charge_id)
    purchase = _purchase_for_charge(charge)
    if purchase is None:
        logger.warning("%s of charge %s matches no purchase: ignored", what, charge_id)
        return None
    return reversal_sync(purchase_id=purchase.pk, back=money_back(charge), now=now or timezone.now())


def charge_refunded(*, charge: dict[str, Any], now: datetime | None = None) -> Reversal | None:
    """``charge.refunded``: take the refunded share of the purchase's credits back out."""
    return _charge_changed(charge["id"], what="refund", now=now)


def dispute_changed(*, dispute: dict[str, Any], now: datetime | None = None) -> Reversal | None:
    """``charge.dispute.*``: the disputed money is held back while the dispute is open or lost, so are its
    credits; a dispute won gives both back."""
    charge = dispute.get("charge")
    charge = charge.get("id") if isinstance(charge, dict) else charge
    if not charge:
        return None
    return _charge_changed(charge, what="dispute", now=now)


def reversal_sync(*, purchase_id: int, back: MoneyBack, now: datetime) -> Reversal:
    """Reverse the share of a purchase's credits its money back calls for, less what is reversed already.

    An unpaid purchase only records the amounts: its fulfilment grants and then reverses, reading
    Stripe again. Credits already spent are not taken (never a negative balance): they are recorded as
    a shortfall, and money that comes back to us (a dispute won) forgives the shortfall first.
    """
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(pk=purchase_id)
        purchase.refunded_cents, purchase.disputed_cents = back.refunded_cents, back.disputed_cents
        returned = min(purchase.amount_cents, back.cents)
        target = purchase.credits * returned // purchase.amount_cents if purchase.amount_cents else 0
        change = target - purchase.credits_reversed
        if purchase.status != Purchase.Status.PAID or change == 0:
            purchase.save(update_fields=["refunded_cents", "disputed_cents"])
            return Reversal(purchase=purchase)
        wallet = wallet_lock(workspace_id=purchase.workspace_id)
        from_topup = purchase.kind in (Purchase.Kind.TOP_UP, Purchase.Kind.AUTO_TOP_UP)
        if change > 0:
            available = wallet.topup_balance if from_topup else wallet.plan_balance
            moved = -min(change, available)
            shortfall = change + moved
            disputed = bool(back.disputed_cents)
            reason = f"{'Dispute' if disputed else 'Refund'} of {purchase}: the refunded share of its credits" + (
                " (part was already spent: recorded as a shortfall)" if shortfall else ""
            )
        else:
            forgiven = min(-change, purchase.shortfall)
            moved, shortfall, disputed = -change - forgiven, -forgiven, True
            reason = f"Dispute of {purchase} won: its credits are back"
        # One entry per step of the purchase's reversals, in order, under the purchase's lock.
        steps = LedgerEntry.objects.filter(
            workspace_id=purchase.workspace_id, idempotency_key__startswith=reversal_prefix(purchase.pk)
        ).count()
        entry = entry_post(
            wallet,
            kind=LedgerEntry.Kind.REFUND,
            topup_delta=moved if from_topup else 0,
            plan_delta=0 if from_topup else moved,
            idempotency_key=reversal_key(purchase.pk, steps + 1),
            reason=reason,
            external_ref=back.dispute_id if disputed and back.dispute_id else back.charge_id,
            now=now,
            metadata={"purchase": purchase.pk, "money_back_cents": returned, "shortfall": max(shortfall, 0)},
        )
        purchase.credits_reversed = target
        purchase.shortfall += shortfall
        purchase.save()
        return Reversal(purchase=purchase, credits_removed=max(-moved, 0), shortfall=max(shortfall, 0), entry=entry)
