"""Holds: credits reserved before a long run, settled by its actual usage or released.

An agent about to start a long run (an Opus session, a large enrichment) places a hold for
its estimate. From then on

    available = plan bucket + top-up balance − the workspace's active holds

and every charge, batch and hold is checked against *available*, so the run is paid for
whatever else the workspace spends meanwhile. The run then settles the hold with what it
actually used, or releases it.

Where the reservation lives: the ``Hold`` row is the record, and the wallet row carries a
small map of the holds not yet settled or released, ``{hold id: [millicredits, expiry in
epoch µs]}``. The charging statement reads that map from the wallet row it has locked
(``SELECT … FOR UPDATE`` hands back the newest committed version), never from the hold
table: its other reads use the snapshot it started with, which would miss a hold placed while
it waited for the lock. So a hold and a charge on the same workspace serialise on that one
row lock and cannot overcommit it together. A workspace keeps at most ``MAX_ACTIVE_HOLDS``.

Rules an agent can rely on:

* **Placing** is idempotent per key: a replay returns the first hold (``replayed``); the same
  key with another amount or specialist is an ``IdempotencyConflict``. A hold larger than
  what is available is refused (``InsufficientCredits``, 402) and nothing is written.
* **Expiry** is lazy: a hold past ``expires_at`` reserves nothing, with no job to run; the
  next hold placed drops it from the wallet's map. Its row stays ``active`` (shown as expired).
* **Settling** charges the actual usage, priced from the catalog exactly as ``charge()`` (caps,
  the monthly budget, paused leads and BYOK apply as to any charge), in the one charging
  statement, which also drops the hold: the unused rest is freed at once. The hold itself
  pays for what it reserved; beyond it the charge may use what is free (available balance
  not reserved by other holds). If the actual cost exceeds the hold plus what is free, the
  settle is refused (``InsufficientCredits``), nothing is written and the hold stays active:
  a charge is never partial (its entry must be quantity × unit price) and never overdraws.
* **Settling an expired hold** still records the run's usage, as a normal charge against the
  available balance (402 if it does not fit): the work was done, and refusing with an
  "expired" code would only make the agent call ``charge()`` instead, with the same result.
* Settling twice returns the first settlement (``replayed``); settling again with other usage
  is ``HoldSettled`` (409 ``hold_settled``). Settling a released hold is ``HoldReleased``.
* **Releasing** is idempotent (a released hold is returned as it is, expired or not);
  releasing a settled hold is ``HoldSettled``.

A hold writes no ledger entry and changes no balance, so ``verify_ledger`` is untouched; only
its settlement's usage entry moves credits. Lock order is the hold row, then the wallet row,
everywhere, so settles and releases cannot deadlock with each other or with placing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.credits import MAX_MILLICREDITS, format_credits
from billing.db import JSONKeyRemoved
from billing.errors import (
    BillingError,
    EmailUnverified,
    HoldNotFound,
    HoldReleased,
    HoldSettled,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    TooManyHolds,
)
from billing.models import Hold, LedgerEntry, Wallet, Workspace, epoch_us
from billing.services.charging import (
    UNVERIFIED_MESSAGE,
    UsageEvent,
    key_checked,
    metadata_checked,
    specialist_checked,
    usage_event,
    usage_settle_hold,
    workspace_checked,
)
from billing.services.ledger_keys import hold_usage_key

logger = logging.getLogger(__name__)


DEFAULT_EXPIRES_IN = 15 * 60  # seconds: long enough for most runs; a longer one asks for more
MAX_EXPIRES_IN = 24 * 60 * 60
MAX_ACTIVE_HOLDS = 100  # per workspace: bounds the map every charge of the workspace may sum


@dataclass(frozen=True)
class HoldSettlement:
    """A settled hold and the usage entry that settled it; ``replayed`` when it was settled before."""

    hold: Hold
    entry: LedgerEntry
    replayed: bool


def _hold_id(hold_id: object) -> int:
    if isinstance(hold_id, int) and not isinstance(hold_id, bool) and 0 < hold_id < 2**63:
        return hold_id
    raise InvalidRequest("hold_id must be a positive whole number.", field="hold_id")


def _locked_hold(workspace_id: int, hold_id: int) -> Hold:
    """The hold, row-locked to the end of the transaction; another workspace's hold is not found."""
    hold = Hold.objects.select_for_update().filter(workspace_id=workspace_id, pk=hold_id).first()
    if hold is None:
        raise HoldNotFound(f"There is no hold {hold_id} in this workspace.", hold_id=hold_id)
    return hold


# --- Placing ----------------------------------------------------------------------------------


def hold_place(
    *,
    workspace: Workspace | int,
    amount: int,
    idempotency_key: str,
    expires_in: int = DEFAULT_EXPIRES_IN,
    specialist: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Hold:
    """Reserve ``amount`` millicredits until ``expires_in`` seconds from now; return the hold.

    Refused with ``InsufficientCredits`` (nothing written) when more than is available would be
    reserved, and with ``TooManyHolds`` past ``MAX_ACTIVE_HOLDS``. A replay of the same key
    returns the first hold with ``replayed = True``.
    """
    workspace_id = workspace_checked(workspace)
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_MILLICREDITS:
        raise InvalidRequest(
            f"amount must be from 0.001 to {format_credits(MAX_MILLICREDITS)} credits.", field="amount"
        )
    key_checked(idempotency_key)
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not 0 < expires_in <= MAX_EXPIRES_IN:
        raise InvalidRequest(f"expires_in must be 1 to {MAX_EXPIRES_IN:,} seconds.", field="expires_in")
    specialist_checked(specialist)
    checked = metadata_checked(metadata)
    now = timezone.now()

    with transaction.atomic():
        # The wallet's row lock first: every charge and hold of the workspace queues on it, so
        # the balance and the map read here stay true until this transaction commits.
        wallet = (
            Wallet.objects.select_for_update(of=("self",))
            .select_related("workspace")
            .only("plan_balance", "topup_balance", "holds", "workspace__closed_at", "workspace__unverified")
            .filter(workspace_id=workspace_id)
            .first()
        )
        if wallet is None:
            raise InvalidRequest(f"There is no workspace {workspace_id}.", field="workspace")
        # Looked up under the lock, so a twin request that committed while this one waited is seen.
        prior = Hold.objects.filter(workspace_id=workspace_id, idempotency_key=idempotency_key).first()
        if prior is not None:
            if (prior.amount, prior.specialist_id) != (amount, specialist):
                raise IdempotencyConflict(
                    f"Idempotency key {idempotency_key!r} was already used for a different hold "
                    f"(#{prior.pk}, {format_credits(prior.amount)} credits).",
                    idempotency_key=idempotency_key,
                )
            prior.replayed = True
            return prior
        if wallet.workspace.closed_at is not None:
            raise InvalidRequest(f"Workspace {workspace_id} is closed and cannot be charged.", field="workspace")
        if wallet.workspace.unverified:
            logger.info("hold refused workspace=%s code=email_unverified key=%s", workspace_id, idempotency_key)
            raise EmailUnverified(UNVERIFIED_MESSAGE)
        active = wallet.active_holds(now)  # expired ones drop out of the map written back below
        if len(active) >= MAX_ACTIVE_HOLDS:
            logger.info("hold refused workspace=%s code=too_many_holds key=%s", workspace_id, idempotency_key)
            raise TooManyHolds(
                f"This workspace already has {len(active)} active holds, the most it may have: "
                "settle or release one first.",
                max_active_holds=MAX_ACTIVE_HOLDS,
            )
        reserved = sum(amount for amount, _ in active.values())  # wallet.reserved_at(now), the map already in hand
        available = wallet.plan_balance + wallet.topup_balance - reserved
        if amount > available:
            logger.info(
                "hold refused workspace=%s code=insufficient_credits key=%s amount=%s available=%s",
                workspace_id,
                idempotency_key,
                amount,
                available,
            )
            raise InsufficientCredits(
                f"Not enough credits to hold {format_credits(amount)}: {format_credits(max(available, 0))} are "
                "available" + (f" ({format_credits(reserved)} more are reserved by other holds)." if reserved else "."),
                required=amount,
                available=max(available, 0),
                reserved=reserved,
            )
        hold = Hold.objects.create(
            workspace_id=workspace_id,
            amount=amount,
            idempotency_key=idempotency_key,
            specialist_id=specialist,
            metadata=checked,
            created_at=now,
            expires_at=now + timedelta(seconds=expires_in),
        )
        active[str(hold.pk)] = [amount, epoch_us(hold.expires_at)]
        # The revision moves so the balance region (its ETag) shows the reservation.
        Wallet.objects.filter(workspace_id=workspace_id).update(
            holds=active, revision=F("revision") + 1, updated_at=now
        )
    hold.replayed = False
    logger.info(
        "hold placed workspace=%s hold=%s amount=%s key=%s expires=%s",
        workspace_id,
        hold.pk,
        amount,
        idempotency_key,
        hold.expires_at.isoformat(),
    )
    return hold


# --- Settling ---------------------------------------------------------------------------------


def hold_settle(
    *,
    workspace: Workspace | int,
    hold_id: int,
    action: str,
    quantity: int = 1,
    idempotency_key: str | None = None,
    specialist: str | None = None,
    lead: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> HoldSettlement:
    """Charge the run's actual usage against its hold and free the rest of the reservation.

    The usage is priced and checked exactly as ``charge()`` prices and checks it; the ledger
    entry's key is ``idempotency_key`` or, by default, ``hold:<id>``. An AI action's
    specialist defaults to the hold's. Refusals write nothing and leave the hold active.
    """
    workspace_id = workspace_checked(workspace)
    hold_id = _hold_id(hold_id)
    # Validated before any lock is taken (an unknown action, a bad quantity: 422, nothing locked).
    event = usage_event(
        action=action,
        idempotency_key=hold_usage_key(hold_id) if idempotency_key is None else idempotency_key,
        quantity=quantity,
        specialist=specialist,
        lead=lead,
        metadata=metadata,
    )
    refusal: BillingError | None = None
    with transaction.atomic():
        hold = _locked_hold(workspace_id, hold_id)
        if specialist is None and hold.specialist_id and event.action.is_ai:
            # An AI call that names no specialist is the hold's (a foreign key: always a known one).
            event = dataclasses.replace(event, specialist=hold.specialist_id)
        if hold.status == Hold.Status.SETTLED:
            return _settled_before(hold, event)
        if hold.status == Hold.Status.RELEASED:
            raise HoldReleased(f"Hold {hold_id} was released: there is nothing to settle.", hold_id=hold_id)
        now = timezone.now()
        try:
            entry = usage_settle_hold(workspace_id=workspace_id, hold_id=hold.pk, event=event, now=now)
        except BillingError as refused:
            # Leave the block normally so the refusal's tally (written by the charging code)
            # commits with nothing else: the hold is untouched. Raised below.
            refusal = refused
        else:
            if entry.replayed:
                # The hold is active, so no settle of it wrote this entry: the key belongs to another charge.
                raise IdempotencyConflict(
                    f"Idempotency key {event.idempotency_key!r} was already used for another charge "
                    f"(entry #{entry.pk}).",
                    idempotency_key=event.idempotency_key,
                )
            hold.status = Hold.Status.SETTLED
            hold.settled_entry = entry
            hold.closed_at = now
            _hold_store(hold, "status", "settled_entry", "closed_at")
    if refusal is not None:
        logger.info("hold settle refused workspace=%s hold=%s code=%s", workspace_id, hold_id, refusal.code)
        raise refusal
    logger.info(
        "hold settled workspace=%s hold=%s held=%s charged=%s entry=%s",
        workspace_id,
        hold.pk,
        hold.amount,
        -entry.amount,
        entry.pk,
    )
    return HoldSettlement(hold=hold, entry=entry, replayed=False)


def _hold_store(hold: Hold, *fields: str) -> None:
    """Write a hold's changed fields, naming its workspace as well as its id (what ``save()`` would
    not): a statement bound to one workspace is routed to one shard (docs/scaling.md)."""
    values = {name: getattr(hold, name) for name in fields}
    Hold.objects.filter(workspace_id=hold.workspace_id, pk=hold.pk).update(**values)


def _settled_before(hold: Hold, event: UsageEvent) -> HoldSettlement:
    entry = LedgerEntry.objects.get(workspace_id=hold.workspace_id, pk=hold.settled_entry_id)
    if (entry.action_id, entry.quantity, entry.lead) != (event.action.id, event.quantity, event.lead):
        raise HoldSettled(
            f"Hold {hold.pk} was already settled (entry #{entry.pk}) with other usage.",
            hold_id=hold.pk,
            entry_id=entry.pk,
        )
    entry.replayed = True
    return HoldSettlement(hold=hold, entry=entry, replayed=True)


# --- Releasing --------------------------------------------------------------------------------


def hold_release(*, workspace: Workspace | int, hold_id: int) -> Hold:
    """Free a hold's reservation at once. A released hold is returned as it is (``replayed``)."""
    workspace_id = workspace_checked(workspace)
    hold_id = _hold_id(hold_id)
    with transaction.atomic():
        hold = _locked_hold(workspace_id, hold_id)
        if hold.status == Hold.Status.SETTLED:
            raise HoldSettled(
                f"Hold {hold_id} was settled (entry #{hold.settled_entry_id}): there is nothing to release.",
                hold_id=hold_id,
                entry_id=hold.settled_entry_id,
            )
        if hold.status == Hold.Status.RELEASED:
            hold.replayed = True
            return hold
        now = timezone.now()
        hold.status = Hold.Status.RELEASED
        hold.closed_at = now
        _hold_store(hold, "status", "closed_at")
        Wallet.objects.filter(workspace_id=workspace_id).update(
            holds=JSONKeyRemoved("holds", str(hold.pk)), revision=F("revision") + 1, updated_at=now
        )
    hold.replayed = False
    logger.info("hold released workspace=%s hold=%s amount=%s", workspace_id, hold.pk, hold.amount)
    return hold
