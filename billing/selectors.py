"""Every read the pages and the API need."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, models

from billing.models import Action, Plan, Specialist, TopUpPack, Workspace


@dataclass(frozen=True)
class PackOffer:
    pack: TopUpPack
    discount_percent: int


@dataclass(frozen=True)
class ActionGroup:
    title: str
    actions: list[Action]


@dataclass(frozen=True)
class CatalogOverview:
    plans: list[Plan]
    packs: list[PackOffer]
    action_groups: list[ActionGroup]


def pack_offers() -> list[PackOffer]:
    """Active packs with their discount against the base rate (the smallest pack's price per credit)."""
    packs = list(TopUpPack.objects.filter(is_active=True).order_by("amount"))
    if not packs:
        return []
    base = packs[0]
    packs.sort(key=lambda pack: (pack.sort_order, pack.amount))
    return [PackOffer(pack=pack, discount_percent=pack.discount_percent(base)) for pack in packs]


def catalog_overview() -> CatalogOverview:
    actions = list(Action.objects.filter(is_active=True).select_related("specialist"))
    groups = [ActionGroup("AI usage (internal)", [a for a in actions if a.is_ai])]
    for specialist in Specialist.objects.all():
        members = [a for a in actions if not a.is_ai and a.specialist_id == specialist.key]
        if members:
            groups.append(ActionGroup(specialist.label, members))
    return CatalogOverview(
        plans=list(Plan.objects.filter(is_active=True)),
        packs=pack_offers(),
        action_groups=groups,
    )


# --- Ledger audit -----------------------------------------------------------------------------


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
_AUDIT_SQL = """
WITH entries AS (
    SELECT workspace_id, id, plan_delta, topup_delta, plan_balance_after, topup_balance_after,
           lag(plan_balance_after, 1, 0::bigint) OVER w AS plan_before,
           lag(topup_balance_after, 1, 0::bigint) OVER w AS topup_before
    FROM billing_ledgerentry
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
FROM billing_workspace ws
LEFT JOIN billing_wallet w ON w.workspace_id = ws.id
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
