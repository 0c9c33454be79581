"""The books checked: every wallet against its ledger, and against its active holds (``verify_ledger``).

Raw SQL (tables from the models, ``billing.db``): each check is one pass over a chunk of
workspaces with window functions and a full join, which the ORM cannot say.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, models

from billing import db
from billing.models import Hold, LedgerEntry, Wallet, Workspace, epoch_us


@dataclass(frozen=True)
class LedgerProblem:
    workspace_id: int
    workspace_name: str
    problem: str


@dataclass(frozen=True)
class AuditChunk:
    checked: int
    entries: int
    problems: list[LedgerProblem]


# One pass per chunk of workspaces: the wallet must equal the sums of its entries, and each
# entry's balances after must follow from the previous entry's (a running balance that
# starts at zero), so a missing, doubled or rewritten entry shows where it happened.
_AUDIT_SQL = f"""
WITH entries AS (
    SELECT workspace_id, id, plan_delta, topup_delta, plan_balance_after, topup_balance_after,
           lag(plan_balance_after, 1, 0::bigint) OVER w AS plan_before,
           lag(topup_balance_after, 1, 0::bigint) OVER w AS topup_before
    FROM {db.table(LedgerEntry)}
    WHERE workspace_id >= %(low)s AND workspace_id < %(high)s
    WINDOW w AS (PARTITION BY workspace_id ORDER BY id)
), sums AS (
    SELECT workspace_id,
           count(*) AS entries,
           sum(plan_delta) AS plan_sum,
           sum(topup_delta) AS topup_sum,
           min(id) FILTER (
               WHERE plan_before + plan_delta <> plan_balance_after
                  OR topup_before + topup_delta <> topup_balance_after
           ) AS first_break,
           count(*) FILTER (WHERE plan_balance_after < 0 OR topup_balance_after < 0) AS negative_entries
    FROM entries
    GROUP BY workspace_id
)
SELECT ws.id, ws.name, w.workspace_id IS NOT NULL AS has_wallet,
       w.plan_balance, w.topup_balance,
       coalesce(s.entries, 0), coalesce(s.plan_sum, 0), coalesce(s.topup_sum, 0),
       s.first_break, coalesce(s.negative_entries, 0)
FROM {db.table(Workspace)} ws
LEFT JOIN {db.table(Wallet)} w ON w.workspace_id = ws.id
LEFT JOIN sums s ON s.workspace_id = ws.id
WHERE ws.id >= %(low)s AND ws.id < %(high)s
ORDER BY ws.id
"""


def _audit_row_problems(row: tuple) -> list[str]:
    (_, _, has_wallet, plan_balance, topup_balance, _entries, plan_sum, topup_sum, first_break, negative) = row
    if not has_wallet:
        return ["has no wallet"]
    found = []
    if plan_balance != plan_sum:
        found.append(f"plan bucket is {plan_balance} mc but its entries add up to {plan_sum} mc")
    if topup_balance != topup_sum:
        found.append(f"top-up balance is {topup_balance} mc but its entries add up to {topup_sum} mc")
    if plan_balance < 0 or topup_balance < 0:
        found.append("wallet balance is negative")
    if negative:
        found.append(f"{negative} entries record a negative balance")
    if first_break is not None:
        found.append(f"running balance breaks at entry #{first_break}")
    return found


def ledger_audit(*, chunk_size: int = 5_000, workspace_ids: list[int] | None = None) -> Iterator[AuditChunk]:
    """Check every workspace's wallet against its ledger, a chunk of workspaces at a time.

    Yields an :class:`AuditChunk` per chunk so a command can show progress on a large
    database without holding it all in memory.
    """
    workspaces = Workspace.objects.all()
    if workspace_ids is not None:
        workspaces = workspaces.filter(id__in=workspace_ids)
    bounds = workspaces.aggregate(low=models.Min("id"), high=models.Max("id"))
    if bounds["low"] is None:
        return
    wanted = set(workspace_ids) if workspace_ids is not None else None
    low = bounds["low"]
    while low <= bounds["high"]:
        high = low + chunk_size
        with connection.cursor() as cursor:
            cursor.execute(_AUDIT_SQL, {"low": low, "high": high})
            rows = cursor.fetchall()
        if wanted is not None:
            rows = [row for row in rows if row[0] in wanted]
        problems = [
            LedgerProblem(workspace_id=row[0], workspace_name=row[1], problem=problem)
            for row in rows
            for problem in _audit_row_problems(row)
        ]
        yield AuditChunk(checked=len(rows), entries=sum(row[5] for row in rows), problems=problems)
        low = high


# The holds beside the ledger: the wallet's map (what charges read under the lock) must be the
# active Hold rows. An active row may be missing from the map once it has expired (the next hold
# placed prunes it); anything else is a hold reserving too much, too little, or nothing.
_HOLDS_AUDIT_SQL = f"""
WITH mapped AS (
    SELECT w.workspace_id, h.key AS hold, (h.value ->> 0)::bigint AS amount, (h.value ->> 1)::bigint AS expires_us
    FROM {db.table(Wallet)} w CROSS JOIN jsonb_each(w.holds) h
    WHERE w.holds <> '{{}}'::jsonb
), active AS (
    SELECT workspace_id, id::text AS hold, amount, (extract(epoch FROM expires_at) * 1000000)::bigint AS expires_us
    FROM {db.table(Hold)} WHERE status = 'active'
)
SELECT ws.id, ws.name, coalesce(m.hold, a.hold), m.amount, a.amount, m.expires_us, a.expires_us
FROM mapped m FULL JOIN active a ON a.workspace_id = m.workspace_id AND a.hold = m.hold
JOIN {db.table(Workspace)} ws ON ws.id = coalesce(m.workspace_id, a.workspace_id)
WHERE (a.hold IS NULL OR (m.hold IS NULL AND a.expires_us > %(now_us)s)
       OR m.amount <> a.amount OR m.expires_us <> a.expires_us)
  AND (%(ids)s::bigint[] IS NULL OR ws.id = ANY(%(ids)s::bigint[]))
ORDER BY ws.id, 3
"""


def holds_audit(*, now: datetime, workspace_ids: list[int] | None = None) -> list[LedgerProblem]:
    """Wallets whose map of holds disagrees with their active holds (see services/holds.py)."""
    with connection.cursor() as cursor:
        cursor.execute(_HOLDS_AUDIT_SQL, {"now_us": epoch_us(now), "ids": workspace_ids})
        rows = cursor.fetchall()
    problems = []
    for workspace_id, name, hold, mapped, active, mapped_until, active_until in rows:
        if active is None:
            problem = f"hold #{hold} reserves {mapped} mc on the wallet but is not active"
        elif mapped is None:
            problem = f"active hold #{hold} ({active} mc, not expired) is missing from the wallet's holds"
        else:
            problem = (
                f"hold #{hold}: the wallet reserves {mapped} mc until {mapped_until} µs, "
                f"its row {active} mc until {active_until} µs"
            )
        problems.append(LedgerProblem(workspace_id=workspace_id, workspace_name=name, problem=problem))
    return problems
