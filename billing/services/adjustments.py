"""Staff credit adjustments: one bucket up or down, with who did it and why, never below zero.

An adjustment is a ledger entry of kind ``adjustment`` written under the wallet's lock with
the staff user as its actor and a reason (the database refuses an adjustment without one).
The caller supplies an idempotency key (the admin's form carries one from the first step
to the confirmation), so a confirmation submitted twice adjusts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from billing.credits import MAX_MILLICREDITS, format_credits
from billing.errors import InvalidRequest
from billing.models import LedgerEntry, Wallet
from billing.services.accounts import PermissionDenied, staff_may
from billing.services.wallets import entry_post, entry_replay, wallet_lock

PERMISSION = "billing.adjust_credits"
MAX_REASON_LENGTH = 1_000
MAX_KEY_LENGTH = 150
KEY_PREFIX = "adjustment:"


@dataclass(frozen=True)
class AdjustmentPreview:
    """What an adjustment would do to the wallet as it stands now (the confirmation step)."""

    workspace_id: int
    bucket: str
    amount: int
    reason: str
    plan_before: int
    topup_before: int
    plan_after: int
    topup_after: int

    @property
    def total_before(self) -> int:
        return self.plan_before + self.topup_before

    @property
    def total_after(self) -> int:
        return self.plan_after + self.topup_after

    @property
    def bucket_label(self) -> str:
        return LedgerEntry.Bucket(self.bucket).label


def _checked_input(*, bucket: str, amount: int, reason: str) -> str:
    """Refuse bad input naming the field; return the reason stripped."""
    if bucket not in LedgerEntry.Bucket.values:
        raise InvalidRequest(
            f"Bucket must be one of {', '.join(LedgerEntry.Bucket.values)} (got {bucket!r}).", field="bucket"
        )
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidRequest("Amount must be a whole number of millicredits.", field="amount")
    if amount == 0:
        raise InvalidRequest("Amount must not be zero: an adjustment changes a balance.", field="amount")
    if abs(amount) > MAX_MILLICREDITS:
        raise InvalidRequest(
            f"Amount must be at most {format_credits(MAX_MILLICREDITS)} credits either way.", field="amount"
        )
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest("A reason is required: it is kept on the ledger entry.", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"The reason is too long ({MAX_REASON_LENGTH} characters at most).", field="reason")
    return reason


def _deltas(bucket: str, amount: int) -> tuple[int, int]:
    return (amount, 0) if bucket == LedgerEntry.Bucket.PLAN else (0, amount)


def _preview(wallet: Wallet, *, bucket: str, amount: int, reason: str) -> AdjustmentPreview:
    plan_delta, topup_delta = _deltas(bucket, amount)
    preview = AdjustmentPreview(
        workspace_id=wallet.workspace_id,
        bucket=bucket,
        amount=amount,
        reason=reason,
        plan_before=wallet.plan_balance,
        topup_before=wallet.topup_balance,
        plan_after=wallet.plan_balance + plan_delta,
        topup_after=wallet.topup_balance + topup_delta,
    )
    before, after = (
        (preview.plan_before, preview.plan_after)
        if bucket == LedgerEntry.Bucket.PLAN
        else (preview.topup_before, preview.topup_after)
    )
    if after < 0:
        raise InvalidRequest(
            f"That would take the {preview.bucket_label.lower()} below zero: it holds "
            f"{format_credits(before)} credits, so at most -{format_credits(before)} can be taken.",
            field="amount",
        )
    return preview


def _wallet(workspace_id: int, *, lock: bool) -> Wallet:
    try:
        return wallet_lock(workspace_id=workspace_id) if lock else Wallet.objects.get(workspace_id=workspace_id)
    except Wallet.DoesNotExist:
        raise InvalidRequest(f"Workspace {workspace_id} has no wallet.", field="workspace") from None


def credits_adjust_preview(*, workspace_id: int, bucket: str, amount: int, reason: str) -> AdjustmentPreview:
    """The balances before and after, for the confirmation step. Writes nothing.

    The same checks as :func:`credits_adjust`, against the wallet as it is now; the
    adjustment itself checks again under the lock, since the balance can move in between.
    """
    reason = _checked_input(bucket=bucket, amount=amount, reason=reason)
    return _preview(_wallet(workspace_id, lock=False), bucket=bucket, amount=amount, reason=reason)


@transaction.atomic
def credits_adjust(
    *,
    workspace_id: int,
    bucket: str,
    amount: int,
    reason: str,
    actor: AbstractBaseUser,
    idempotency_key: str,
    now: datetime | None = None,
) -> LedgerEntry:
    """Add (or, negative, take) ``amount`` millicredits to one bucket, as ``actor``, for ``reason``.

    Returns the entry; ``entry.replayed`` is True when this key was used before with the same
    request (nothing more is written). The same key with a different request is an
    IdempotencyConflict.
    """
    if not staff_may(actor, PERMISSION):
        raise PermissionDenied("Adjusting credits needs staff with the “Can adjust a workspace's credits” permission.")
    reason = _checked_input(bucket=bucket, amount=amount, reason=reason)
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"An idempotency key of 1 to {MAX_KEY_LENGTH} characters is required.", field="idempotency_key"
        )
    key = KEY_PREFIX + key
    # The lock first: a second submit of the same confirmation waits here, then finds the
    # first one's entry below instead of adjusting again.
    wallet = _wallet(workspace_id, lock=True)
    plan_delta, topup_delta = _deltas(bucket, amount)
    replay = entry_replay(
        workspace_id=workspace_id,
        idempotency_key=key,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        plan_delta=plan_delta,
        topup_delta=topup_delta,
        actor_id=actor.pk,
        reason=reason,
    )
    if replay is not None:
        replay.replayed = True
        return replay
    _preview(wallet, bucket=bucket, amount=amount, reason=reason)
    entry = entry_post(
        wallet,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        plan_delta=plan_delta,
        topup_delta=topup_delta,
        idempotency_key=key,
        now=now or timezone.now(),
        actor=actor,
        reason=reason,
        metadata={"bucket": bucket, "by": actor.get_username()},
    )
    entry.replayed = False
    return entry
