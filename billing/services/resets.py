"""Period resets: every workspace whose period has ended gets the next one, a batch at a time.

For each due wallet the unused plan bucket expires (an entry) and the new allowance is granted
(an entry); top-up credits carry over. One batch is three set-based statements over arrays
(expiries, grants, wallets) plus one for workspaces whose plan changes, inside one transaction
that holds the batch's wallet rows (``FOR UPDATE SKIP LOCKED``). So:

* exactly once per (workspace, period): the grant's key is derived from the period's start and
  unique per workspace, and a wallet stops being due the moment its period moves on;
* two beats at once split the due wallets between them instead of waiting or doubling;
* a worker killed mid-batch rolls the whole batch back, and the redelivered task redoes it.

What the next period is (DESIGN.md §3): monthly from the wallet's anchor (the workspace's
creation for Free, the day the 31st clamped to short months, on the workspace's own clock;
the subscription's start for paid plans, as Stripe counts). A workspace with a running
subscription is granted its plan × seats (a downgrade or fewer seats take effect here);
without one, Free. ``invoice.paid`` may grant the same period first: then this finds nothing
due. A renewal still unpaid three days into its period falls back to the Free bucket
(``past_due_fallbacks``).
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.db import insert, raw_cursor, table
from billing.models import FreeCredits, LedgerEntry, Plan, Subscription, Wallet, Workspace
from billing.months import period_containing
from billing.services.ledger_keys import plan_expiry_key, plan_fallback_expiry_key, plan_fallback_key, plan_grant_key
from billing.services.wallets import bucket_expire, entry_post, wallet_lock

logger = logging.getLogger(__name__)

BATCH_SIZE = 1_000  # workspaces per transaction: row locks held for a fraction of a second
FALLBACK_AFTER = timedelta(days=3)
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete")

_DUE_SQL = f"""
SELECT w.workspace_id, w.plan_balance, w.topup_balance, w.period_start, w.period_end,
       coalesce(w.period_anchor, ws.created_at), ws.time_zone, ws.plan_id, ws.seats,
       s.plan_id, s.seats, ws.free_credits
FROM {table(Wallet)} w
JOIN {table(Workspace)} ws ON ws.id = w.workspace_id
LEFT JOIN {table(Subscription)} s ON s.workspace_id = w.workspace_id AND s.status = ANY(%(live)s)
WHERE w.period_end <= %(now)s AND ws.closed_at IS NULL
  AND (%(only)s::bigint[] IS NULL OR w.workspace_id = ANY(%(only)s))
ORDER BY w.period_end, w.workspace_id
LIMIT %(limit)s
FOR UPDATE OF w SKIP LOCKED
"""

# One statement for a batch's expiries and one for its grants: the entries, from arrays.
_PERIOD_ENTRIES = insert(
    LedgerEntry,
    {
        "workspace_id": "v.ws",
        "kind": "%(kind)s::varchar",
        "plan_delta": "v.delta",
        "topup_delta": "0",
        "plan_balance_after": "v.after",
        "topup_balance_after": "v.topup",
        "byok": "false",
        "lead": "''",
        "idempotency_key": "v.key",
        "reason": """CASE WHEN %(kind)s::varchar = 'plan_grant' THEN p.name || ' plan: monthly credits'
            ELSE 'Unused plan credits expired at the end of the period' END""",
        "external_ref": "''",
        "metadata": "jsonb_build_object('plan', p.key, 'seats', v.seats, 'period_start', v.start_at)",
        "created_at": "%(now)s",
    },
)
_ENTRIES_SQL = f"""
{_PERIOD_ENTRIES}
FROM unnest(%(ws)b::bigint[], %(delta)b::bigint[], %(after)b::bigint[], %(topup)b::bigint[], %(key)b::text[],
            %(plan)b::bigint[], %(seats)b::int[], %(start)b::timestamptz[])
     AS v(ws, delta, after, topup, key, plan, seats, start_at)
JOIN {table(Plan)} p ON p.id = v.plan
ORDER BY v.ws
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING workspace_id
"""

_WALLETS_SQL = f"""
UPDATE {table(Wallet)} w
SET plan_balance = v.allowance, period_start = v.start_at, period_end = v.end_at, period_allowance = v.allowance,
    period_anchor = v.anchor, period_spend = 0, revision = w.revision + 2, updated_at = %(now)s
FROM unnest(%(ws)b::bigint[], %(allowance)b::bigint[], %(start)b::timestamptz[], %(end)b::timestamptz[],
            %(anchor)b::timestamptz[]) AS v(ws, allowance, start_at, end_at, anchor)
WHERE w.workspace_id = v.ws
"""

_WORKSPACES_SQL = f"""
UPDATE {table(Workspace)} ws SET plan_id = v.plan, seats = v.seats
FROM unnest(%(ws)b::bigint[], %(plan)b::bigint[], %(seats)b::int[]) AS v(ws, plan, seats)
WHERE ws.id = v.ws AND (ws.plan_id <> v.plan OR ws.seats <> v.seats)
"""


@dataclass
class ResetSummary:
    workspaces: int = 0
    expired_credits: int = 0
    granted_credits: int = 0
    batches: int = 0
    fallbacks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Next:
    workspace_id: int
    plan_balance: int
    topup_balance: int
    old_start: datetime
    start: datetime
    end: datetime
    anchor: datetime
    plan: Plan
    seats: int
    old_plan_id: int
    old_seats: int
    allowance: int


def _next_period(row: tuple, now: datetime, plans: dict[int, Plan], free: Plan) -> _Next:
    ws, plan_bal, topup_bal, old_start, old_end, anchor, tz, old_plan, old_seats, sub_plan, sub_seats = row[:11]
    free_credits = row[11]
    if sub_plan is not None:
        # A running subscription: Stripe's rhythm (UTC) and what Stripe bills now.
        plan, seats, zone = plans[sub_plan], sub_seats, UTC
    else:
        plan, seats, zone = free, 1, zoneinfo.ZoneInfo(tz)
    local_anchor = anchor.astimezone(zone)
    # The period containing now: a beat that was down for weeks grants the current one only.
    start, end = period_containing(local_anchor, max(now, old_end).astimezone(zone))
    # Free's bucket only where the address's one Free grant is (issue 18): not while the owner has
    # not verified, nor in a second workspace of the same address.
    allowance = 0 if plan.is_free and free_credits != FreeCredits.GRANTED else plan.allowance_for(seats)
    return _Next(
        ws, plan_bal, topup_bal, old_start, start, end, local_anchor, plan, seats, old_plan, old_seats, allowance
    )


def _reset_batch(*, now: datetime, limit: int, only: list[int] | None) -> list[_Next]:
    plans = {plan.pk: plan for plan in Plan.objects.all()}
    free = next(plan for plan in plans.values() if plan.key == "free")
    # A plain psycopg cursor binds server-side: the 1,000-element arrays travel as parameters,
    # not inlined into the text, so each batch's statement text is the same (psycopg remembers
    # the last 100 distinct texts it ran, and inlined batches would each be a new one). The
    # arrays go in binary (%(name)b) and the due rows come back in binary: quoting and parsing
    # them as text was a third of a batch's Python time.
    with raw_cursor() as cursor:
        cursor.execute(_DUE_SQL, {"now": now, "limit": limit, "only": only, "live": list(LIVE_STATUSES)}, binary=True)
        due = [_next_period(row, now, plans, free) for row in cursor.fetchall()]
        if not due:
            return []
        expiring = [d for d in due if d.plan_balance > 0]
        cursor.execute(
            _ENTRIES_SQL,
            {
                "kind": LedgerEntry.Kind.PLAN_EXPIRY,
                "now": now,
                "ws": [d.workspace_id for d in expiring],
                "delta": [-d.plan_balance for d in expiring],
                "after": [0] * len(expiring),
                "topup": [d.topup_balance for d in expiring],
                "key": [plan_expiry_key(d.old_start) for d in expiring],
                "plan": [d.old_plan_id for d in expiring],
                "seats": [d.old_seats for d in expiring],
                "start": [d.old_start for d in expiring],
            },
        )
        if cursor.rowcount != len(expiring):
            raise RuntimeError("a period's expiry was already written: refusing to reset twice")
        granted = [d for d in due if d.allowance > 0]  # a Free workspace without its grant: no entry
        cursor.execute(
            _ENTRIES_SQL,
            {
                "kind": LedgerEntry.Kind.PLAN_GRANT,
                "now": now,
                "ws": [d.workspace_id for d in granted],
                "delta": [d.allowance for d in granted],
                "after": [d.allowance for d in granted],
                "topup": [d.topup_balance for d in granted],
                "key": [plan_grant_key(d.start) for d in granted],
                "plan": [d.plan.pk for d in granted],
                "seats": [d.seats for d in granted],
                "start": [d.start for d in granted],
            },
        )
        if cursor.rowcount != len(granted):
            raise RuntimeError("a period was already granted: refusing to reset twice")
        cursor.execute(
            _WALLETS_SQL,
            {
                "now": now,
                "ws": [d.workspace_id for d in due],
                "allowance": [d.allowance for d in due],
                "start": [d.start for d in due],
                "end": [d.end for d in due],
                "anchor": [d.anchor for d in due],
            },
        )
        changed = [d for d in due if (d.plan.pk, d.seats) != (d.old_plan_id, d.old_seats)]
        if changed:
            cursor.execute(
                _WORKSPACES_SQL,
                {
                    "ws": [d.workspace_id for d in changed],
                    "plan": [d.plan.pk for d in changed],
                    "seats": [d.seats for d in changed],
                },
            )
    return due


def periods_reset(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    workspace_ids: list[int] | None = None,
    progress: Callable[[ResetSummary], None] | None = None,
) -> ResetSummary:
    """Reset every due workspace (or those of ``workspace_ids``), ``batch_size`` per transaction."""
    now = now or timezone.now()
    summary = ResetSummary()
    while True:
        with transaction.atomic():
            done = _reset_batch(now=now, limit=batch_size, only=workspace_ids)
        if not done:
            break
        summary.batches += 1
        summary.workspaces += len(done)
        summary.expired_credits += sum(d.plan_balance for d in done)
        summary.granted_credits += sum(d.allowance for d in done)
        if progress:
            progress(summary)
        if len(done) < batch_size:
            break
    summary.fallbacks = past_due_fallbacks(now=now, workspace_ids=workspace_ids)
    if summary.workspaces or summary.fallbacks:
        logger.info("period resets: %s workspace(s) in %s batch(es)", summary.workspaces, summary.batches)
    return summary


def past_due_fallbacks(*, now: datetime, workspace_ids: list[int] | None = None) -> list[int]:
    """Workspaces whose renewal is still unpaid three days into the period drop to the Free bucket."""
    candidates = Subscription.objects.filter(
        status__in=("past_due", "unpaid"), past_due_since__isnull=False, workspace__closed_at__isnull=True
    ).exclude(workspace__plan__key="free")
    if workspace_ids is not None:
        candidates = candidates.filter(workspace_id__in=workspace_ids)
    free = Plan.objects.get(key="free")
    fallen: list[int] = []
    for workspace_id in candidates.values_list("workspace_id", flat=True):
        with transaction.atomic():
            wallet: Wallet = wallet_lock(workspace_id=workspace_id)
            if now < wallet.period_start + FALLBACK_AFTER:
                continue
            key = plan_fallback_key(wallet.period_start)
            if LedgerEntry.objects.filter(workspace_id=workspace_id, idempotency_key=key).exists():
                continue
            granted = Workspace.objects.filter(pk=workspace_id, free_credits=FreeCredits.GRANTED).exists()
            allowance = free.allowance if granted else 0  # issue 18: Free's bucket only where the address's grant is
            bucket_expire(
                wallet,
                idempotency_key=plan_fallback_expiry_key(wallet.period_start),
                reason="Renewal unpaid for three days: the plan's credits are withdrawn",
                now=now,
            )
            wallet.period_allowance = allowance
            # The grant entry is written even at 0: its key is what marks this period as fallen back.
            entry_post(
                wallet,
                kind=LedgerEntry.Kind.PLAN_GRANT,
                plan_delta=allowance,
                idempotency_key=key,
                reason="Renewal unpaid for three days: Free plan credits until it is paid",
                now=now,
                metadata={"plan": free.key, "fallback": True},
            )
            Workspace.objects.filter(pk=workspace_id).update(plan=free, seats=1)
            fallen.append(workspace_id)
    return fallen
