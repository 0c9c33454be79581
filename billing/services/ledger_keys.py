"""The idempotency keys of the ledger entries billing writes on its own: one function per kind.

An entry's key is unique per workspace (a database constraint), so an entry whose key is derived
from what it is for (a period's start, an invoice, a Checkout Session, a purchase's n-th reversal)
is written once however many callers ask for it. Each prefix is spelled here and nowhere else;
charges carry their callers' own keys. Instants are written in UTC, so one moment is one key
whatever zone it arrives in.
"""

from __future__ import annotations

from datetime import UTC, datetime


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


# --- Periods --------------------------------------------------------------------------------------


def plan_grant_key(period_start: datetime) -> str:
    """The grant that opens the period starting at ``period_start``."""
    return f"plan-grant:{_instant(period_start)}"


def plan_expiry_key(period_start: datetime) -> str:
    """The expiry of the unused bucket of the period that started at ``period_start``."""
    return f"plan-expiry:{_instant(period_start)}"


def plan_fallback_key(period_start: datetime) -> str:
    """The Free grant of a period whose renewal went unpaid for three days."""
    return f"plan-fallback:{_instant(period_start)}"


def plan_fallback_expiry_key(period_start: datetime) -> str:
    """The expiry of the paid bucket withdrawn by that fallback."""
    return f"{plan_fallback_key(period_start)}:expiry"


def plan_restore_key(invoice_id: str) -> str:
    """The paid bucket granted again when the late renewal (``invoice_id``) is paid."""
    return f"plan-restore:{invoice_id}"


def plan_restore_expiry_key(invoice_id: str) -> str:
    """The expiry of the Free stand-in credits that restore replaces."""
    return f"{plan_restore_key(invoice_id)}:expiry"


def plan_join_key(invoice_id: str) -> str:
    """The share of a plan granted when a first invoice joins the workspace's current period."""
    return f"plan-join:{invoice_id}"


def plan_upgrade_key(invoice_id: str) -> str:
    """The prorated difference granted for a paid plan or seat change."""
    return f"plan-upgrade:{invoice_id}"


# --- Purchases ------------------------------------------------------------------------------------


def top_up_key(payment_id: str) -> str:
    """A paid pack's credits: ``payment_id`` is its Checkout Session's or (auto top-up) PaymentIntent's id."""
    return f"top-up:{payment_id}"


def reversal_prefix(purchase_id: int) -> str:
    """What every reversal of one purchase's credits starts with (they are counted by it)."""
    return f"reversal:{purchase_id}:"


def reversal_key(purchase_id: int, step: int) -> str:
    """The ``step``-th reversal (refund, dispute, dispute won) of a purchase's credits, counted from 1."""
    return f"{reversal_prefix(purchase_id)}{step}"


# --- Holds and staff ------------------------------------------------------------------------------


def hold_usage_key(hold_id: int) -> str:
    """The usage that settles hold ``hold_id`` when its caller names no key of its own."""
    return f"hold:{hold_id}"


def adjustment_key(token: str) -> str:
    """A staff adjustment: ``token`` is the form's (or the caller's) own key, kept apart from charges' keys."""
    return f"adjustment:{token}"
