"""Staff credit adjustments: one bucket up or down, with who did it and why, never below zero.

An adjustment is a ledger entry of kind ``adjustment`` written under the wallet's lock with
the staff user as its actor and two texts: a ``description`` the customer reads (stored as the
entry's ``reason``, the text their transactions, CSV and API show for every kind) and an
``internal_note`` for staff alone (the admin and the staff export). The database refuses an
adjustment without either. The caller supplies an idempotency key (the admin's form carries one
from the first step to the confirmation), so a confirmation submitted twice adjusts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from billing.credits import MAX_MILLICREDITS, format_credits
from billing.errors import InvalidRequest, NotPermitted
from billing.models import LedgerEntry, Wallet
from billing.services.accounts import staff_may
from billing.services.ledger_keys import adjustment_key
from billing.services.wallets import entry_post, entry_replay, wallet_lock

PERMISSION = "billing.adjust_credits"
MAX_REASON_LENGTH = 1_000
MAX_KEY_LENGTH = 150


@dataclass(frozen=True)
class AdjustmentPreview:
    """What an adjustment would do to the wallet as it stands now (the confirmation step)."""

    workspace_id: int
    bucket: str
    amount: int
    description: str
    internal_note: str
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


def _checked_text(text: str, *, field: str, name: str, why: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequest(f"{name} is required: {why}.", field=field)
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"{name} is too long ({MAX_REASON_LENGTH:,} characters at most).", field=field)
    if "\x00" in text:  # PostgreSQL's text cannot hold it
        raise InvalidRequest(f"{name} must not contain a NUL character.", field=field)
    return text


def _checked_input(*, bucket: str, amount: int, description: str, internal_note: str) -> tuple[str, str]:
    """Refuse bad input naming the field; return the description and the note, stripped."""
    if bucket not in LedgerEntry.Bucket.values:
        raise InvalidRequest(
            f"Bucket must be one of {', '.join(LedgerEntry.Bucket.values)} (got {bucket!r}).", field="bucket"
        )
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidRequest("Amount must be exact to a thousandth of a credit.", field="amount")
    if amount == 0:
        raise InvalidRequest("Amount must not be zero: an adjustment changes a balance.", field="amount")
    if abs(amount) > MAX_MILLICREDITS:
        raise InvalidRequest(
            f"Amount must be at most {format_credits(MAX_MILLICREDITS)} credits either way.", field="amount"
        )
    description = _checked_text(
        description, field="description", name="A description", why="the customer reads it with the entry"
    )
    internal_note = _checked_text(
        internal_note, field="internal_note", name="An internal note", why="staff's record of why, kept on the entry"
    )
    return description, internal_note


def _deltas(bucket: str, amount: int) -> tuple[int, int]:
    return (amount, 0) if bucket == LedgerEntry.Bucket.PLAN else (0, amount)


def _preview(wallet: Wallet, *, bucket: str, amount: int, description: str, internal_note: str) -> AdjustmentPreview:
    plan_delta, topup_delta = _deltas(bucket, amount)
    preview = AdjustmentPreview(
        workspace_id=wallet.workspace_id,
        bucket=bucket,
        amount=amount,
        description=description,
        internal_note=internal_note,
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


def credits_adjust_preview(
    *, workspace_id: int, bucket: str, amount: int, description: str, internal_note: str
) -> AdjustmentPreview:
    """The balances before and after, for the confirmation step. Writes nothing.

    The same checks as :func:`credits_adjust`, against the wallet as it is now; the
    adjustment itself checks again under the lock, since the balance can move in between.
    """
    description, internal_note = _checked_input(
        bucket=bucket, amount=amount, description=description, internal_note=internal_note
    )
    return _preview(
        _wallet(workspace_id, lock=False),
        bucket=bucket,
        amount=amount,
        description=description,
        internal_note=internal_note,
    )


@transaction.atomic
def credits_adjust(
    *,
    workspace_id: int,
    bucket: str,
    amount: int,
    description: str,
    internal_note: str,
    actor: AbstractBaseUser,
    idempotency_key: str,
    now: datetime | None = None,
) -> LedgerEntry:
    """Add (or, negative, take) ``amount`` millicredits to one bucket, as ``actor``.

    ``description`` is what the customer reads beside the entry; ``internal_note`` is staff's
    why, shown only in the admin. Returns the entry; ``entry.replayed`` is True when this key
    was used before with the same request (nothing more is written). The same key with a
    different request (amount, bucket, actor, description or note) is an IdempotencyConflict.
    """
    if not staff_may(actor, PERMISSION):
        raise NotPermitted("Adjusting credits needs staff with the “Can adjust a workspace's credits” permission.")
    description, internal_note = _checked_input(
        bucket=bucket, amount=amount, description=description, internal_note=internal_note
    )
    key = (idempotency_key or "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"An idempotency key of 1 to {MAX_KEY_LENGTH} characters is required.", field="idempotency_key"
        )
    key = adjustment_key(key)
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
        reason=description,
        internal_note=internal_note,
    )
    if replay is not None:
        replay.replayed = True
        return replay
    _preview(wallet, bucket=bucket, amount=amount, description=description, internal_note=internal_note)
    entry = entry_post(
        wallet,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        plan_delta=plan_delta,
        topup_delta=topup_delta,
        idempotency_key=key,
        now=now or timezone.now(),
        actor=actor,
        reason=description,
        internal_note=internal_note,
        metadata={"bucket": bucket, "by": actor.get_username()},
    )
    entry.replayed = False
    return entry
