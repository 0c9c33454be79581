"""The general way to move credits: lock the wallet, write the entry, update the balances.

Grants, top-ups, expiries, adjustments and refunds go through here. They are rare next to
usage, so clarity wins over round trips; usage has its own one-statement path in
``billing.services.charging``. Either way the balance and the entry that explains it
change in one transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F

from billing.errors import IdempotencyConflict, InsufficientCredits
from billing.models import LedgerEntry, Wallet

logger = logging.getLogger(__name__)

_BALANCE_FIELDS = ("plan_balance", "topup_balance")
_PERIOD_FIELDS = ("period_start", "period_end", "period_allowance", "period_anchor", "period_spend")


def wallet_lock(*, workspace_id: int) -> Wallet:
    """The wallet, row-locked until the surrounding transaction ends."""
    return Wallet.objects.select_for_update().get(workspace_id=workspace_id)


def entry_replay(*, workspace_id: int, idempotency_key: str, kind: str, **expected: Any) -> LedgerEntry | None:
    """The entry an earlier call with this key wrote, if any; a conflict if it differs."""
    entry = LedgerEntry.objects.filter(workspace_id=workspace_id, idempotency_key=idempotency_key).first()
    if entry is None:
        return None
    mismatched = [name for name, value in expected.items() if getattr(entry, name) != value]
    if entry.kind != kind or mismatched:
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was already used for a different request "
            f"(entry #{entry.pk}, {entry.get_kind_display().lower()}).",
            entry_id=entry.pk,
        )
    return entry


def entry_post(
    wallet: Wallet,
    *,
    kind: str,
    idempotency_key: str,
    now: datetime,
    plan_delta: int = 0,
    topup_delta: int = 0,
    **fields: Any,
) -> LedgerEntry:
    """Apply the deltas to a wallet locked by :func:`wallet_lock` and journal them.

    Must run inside the transaction that holds the lock.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("entry_post must run inside the transaction that locked the wallet")
    plan_after = wallet.plan_balance + plan_delta
    topup_after = wallet.topup_balance + topup_delta
    if plan_after < 0 or topup_after < 0:
        raise InsufficientCredits(
            "Not enough credits for this change.",
            plan_balance=wallet.plan_balance,
            topup_balance=wallet.topup_balance,
        )
    entry = LedgerEntry.objects.create(
        workspace_id=wallet.workspace_id,
        kind=kind,
        plan_delta=plan_delta,
        topup_delta=topup_delta,
        plan_balance_after=plan_after,
        topup_balance_after=topup_after,
        idempotency_key=idempotency_key,
        created_at=now,
        **fields,
    )
    wallet.plan_balance = plan_after
    wallet.topup_balance = topup_after
    wallet.revision += 1
    wallet.updated_at = now
    # Callers that open a period set the period fields on the locked wallet before posting.
    wallet.save(update_fields=[*_BALANCE_FIELDS, *_PERIOD_FIELDS, "revision", "updated_at"])
    logger.info(
        "ledger %s workspace=%s key=%s plan=%+d topup=%+d entry=%s",
        kind,
        wallet.workspace_id,
        idempotency_key,
        plan_delta,
        topup_delta,
        entry.pk,
    )
    return entry


def wallet_processing_count(workspace_id: int, delta: int) -> None:
    """Count a purchase into or out of "payment processing"; the revision bump refreshes the polled balance."""
    Wallet.objects.filter(workspace_id=workspace_id).update(
        payments_processing=F("payments_processing") + delta, revision=F("revision") + 1
    )


def bucket_expire(
    wallet: Wallet, *, idempotency_key: str, reason: str, now: datetime, **fields: Any
) -> LedgerEntry | None:
    """Expire the whole plan bucket of a locked wallet (an entry), or nothing when it is empty."""
    if not wallet.plan_balance:
        return None
    return entry_post(
        wallet,
        kind=LedgerEntry.Kind.PLAN_EXPIRY,
        plan_delta=-wallet.plan_balance,
        idempotency_key=idempotency_key,
        reason=reason,
        now=now,
        **fields,
    )
