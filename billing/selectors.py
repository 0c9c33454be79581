"""Every read the pages and the API need."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, models
from django.db.models import Q, Subquery, Sum

from billing.models import (
    Action,
    Activity,
    DailyUsage,
    LedgerEntry,
    Plan,
    Purchase,
    RefusalTally,
    Specialist,
    SpecialistCap,
    Subscription,
    TopUpPack,
    Wallet,
    Workspace,
)


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


# --- Settings → Billing & Credits ---------------------------------------------------------------

NEARLY_USED_PERCENT = 80
FORECAST_HORIZON_DAYS = 3_650  # past ten years a forecast says nothing useful


@dataclass(frozen=True)
class BalanceSummary:
    workspace_id: int
    plan: Plan
    seats: int
    allowance: int
    plan_balance: int
    topup_balance: int
    period_start: datetime
    period_end: datetime
    revision: int

    @property
    def total(self) -> int:
        return self.plan_balance + self.topup_balance

    @property
    def used(self) -> int:
        return max(self.allowance - self.plan_balance, 0)

    @property
    def used_percent(self) -> int:
        return min(100, self.used * 100 // self.allowance) if self.allowance else 100

    @property
    def level(self) -> str:
        """ "empty" when the bucket is used up, "low" when nearly, else "ok"."""
        if self.plan_balance == 0:
            return "empty"
        return "low" if self.used_percent >= NEARLY_USED_PERCENT else "ok"


def balance_of(wallet: Wallet) -> BalanceSummary:
    """The balance card from a wallet already read (with its workspace and plan)."""
    workspace_id = wallet.workspace_id
    return BalanceSummary(
        workspace_id=workspace_id,
        plan=wallet.workspace.plan,
        seats=wallet.workspace.seats,
        allowance=wallet.period_allowance,
        plan_balance=wallet.plan_balance,
        topup_balance=wallet.topup_balance,
        period_start=wallet.period_start,
        period_end=wallet.period_end,
        revision=wallet.revision,
    )


@dataclass(frozen=True)
class LedgerFilters:
    specialist: str = ""
    action: str = ""
    kind: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_query(self) -> dict[str, str]:
        pairs = {
            "specialist": self.specialist,
            "action": self.action,
            "kind": self.kind,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }
        return {name: value for name, value in pairs.items() if value}


def _ledger_queryset(workspace_id: int, filters: LedgerFilters, zone: ZoneInfo) -> models.QuerySet:
    entries = LedgerEntry.objects.filter(workspace_id=workspace_id)
    if filters.specialist:
        entries = entries.filter(specialist_id=filters.specialist)
    if filters.action:
        entries = entries.filter(action__key=filters.action)
    if filters.kind:
        entries = entries.filter(kind=filters.kind)
    # Dates are the reader's days: from local midnight to the next one after date_to.
    if filters.date_from:
        entries = entries.filter(created_at__gte=datetime.combine(filters.date_from, time.min, tzinfo=zone))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=zone)
        entries = entries.filter(created_at__lt=end)
    return entries


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    next_cursor: int | None


def ledger_page(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, before: int | None = None, limit: int = 25
) -> LedgerPage:
    """Newest first, ``limit`` at a time; the cursor is the last id shown (keyset, never OFFSET).

    Without dates the list runs down the ids. With a date range it runs down the times, so
    the (workspace, created_at, id) index starts inside the range instead of walking every
    newer entry to reach it; the cursor is still an id, whose time is looked up.
    """
    entries = _ledger_queryset(workspace_id, filters, zone)
    by_time = filters.date_from is not None or filters.date_to is not None
    if before is not None:
        if by_time:
            # Keyset on (created_at, id): rows strictly before the cursor entry in that order.
            at = LedgerEntry.objects.filter(workspace_id=workspace_id, pk=before).values_list("created_at", flat=True)
            entries = entries.filter(Q(created_at__lt=Subquery(at)) | Q(created_at=Subquery(at), id__lt=before))
        else:
            entries = entries.filter(id__lt=before)
    order = ("-created_at", "-id") if by_time else ("-id",)
    rows = list(entries.select_related("action", "specialist", "actor").order_by(*order)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return LedgerPage(entries=rows, next_cursor=rows[-1].pk if more and rows else None)


def ledger_export(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, chunk: int = 2_000
) -> Iterator[LedgerEntry]:
    """Every matching entry, newest first, read a keyset chunk at a time (for streaming CSV)."""
    before = None
    while True:
        page = ledger_page(workspace_id=workspace_id, filters=filters, zone=zone, before=before, limit=chunk)
        yield from page.entries
        if page.next_cursor is None:
            return
        before = page.next_cursor


@dataclass(frozen=True)
class ToolUsage:
    key: str
    label: str
    credits: int
    list_credits: int
    quantity: int
    events: int
    unit: str


@dataclass(frozen=True)
class UsageSummary:
    start: date
    end: date
    today: date
    days: list[date]
    by_day: dict[date, dict[str, int]]
    tools: list[ToolUsage]
    specialists: list[tuple[str, int]]
    total: int
    byok_saved: int
    followups_skipped: int
    reply_saved: int
    runs_out_on: date | None
    total_runs_out_on: date | None


def usage_summary(*, workspace_id: int, today: date) -> UsageSummary:
    """The current period's usage from the day counters (never the ledger), and the forecast."""
    wallet = Wallet.objects.select_related("workspace").get(workspace_id=workspace_id)
    zone = wallet.workspace.zone
    start = wallet.period_start.astimezone(zone).date()
    end = wallet.period_end.astimezone(zone).date()
    rows = list(
        DailyUsage.objects.filter(workspace_id=workspace_id, day__gte=start, day__lte=max(today, start))
        .values_list("day", "action__key", "action__label", "action__unit", "specialist__label")
        .annotate(
            credits=Sum("credits"), list_credits=Sum("list_credits"), quantity=Sum("quantity"), events=Sum("events")
        )
        .order_by()
    )
    days = [start + timedelta(days=n) for n in range((min(today, end) - start).days + 1)]
    by_day: dict[date, dict[str, int]] = {day: {} for day in days}
    tools: dict[str, dict] = {}
    specialists: dict[str, int] = {}
    for day, key, label, unit, specialist, credits_, list_credits, quantity, events in rows:
        by_day.setdefault(day, {})[key] = by_day.get(day, {}).get(key, 0) + credits_
        tool = tools.setdefault(
            key, {"key": key, "label": label, "unit": unit, "credits": 0, "list_credits": 0, "quantity": 0, "events": 0}
        )
        tool["credits"] += credits_
        tool["list_credits"] += list_credits
        tool["quantity"] += quantity
        tool["events"] += events
        specialists[specialist] = specialists.get(specialist, 0) + credits_
    tool_list = sorted((ToolUsage(**t) for t in tools.values()), key=lambda t: -t.credits)
    total = sum(t.credits for t in tool_list)
    refused = RefusalTally.objects.filter(
        workspace_id=workspace_id, day__gte=start, day__lte=today, code="sequence_paused"
    ).aggregate(count=Sum("refusals"), saved=Sum("credits"))
    # The forecast: the pace so far this period, carried forward.
    elapsed = max((today - start).days + 1, 1)

    def lasts_until(balance: int) -> date | None:
        if total <= 0:
            return None
        days = balance * elapsed // total  # whole days the balance lasts at the average daily spend
        return today + timedelta(days=days) if days <= FORECAST_HORIZON_DAYS else None

    runs_out, total_runs_out = lasts_until(wallet.plan_balance), lasts_until(wallet.total)
    return UsageSummary(
        start=start,
        end=end,
        today=today,
        days=days,
        by_day=by_day,
        tools=tool_list,
        specialists=sorted(specialists.items(), key=lambda item: -item[1]),
        total=total,
        byok_saved=sum(t.list_credits - t.credits for t in tool_list),
        followups_skipped=refused["count"] or 0,
        reply_saved=refused["saved"] or 0,
        runs_out_on=runs_out,
        total_runs_out_on=total_runs_out,
    )


@dataclass(frozen=True)
class CapRow:
    specialist: Specialist
    daily_cap: int | None
    spent_today: int

    @property
    def percent(self) -> int:
        if not self.daily_cap:
            return 100 if self.daily_cap == 0 else 0
        return min(100, self.spent_today * 100 // self.daily_cap)


def caps_overview(*, workspace_id: int, today: date) -> list[CapRow]:
    caps = dict(SpecialistCap.objects.filter(workspace_id=workspace_id).values_list("specialist_id", "daily_cap"))
    spent = dict(
        DailyUsage.objects.filter(workspace_id=workspace_id, day=today)
        .values_list("specialist_id")
        .annotate(total=Sum("credits"))
        .order_by()
    )
    return [CapRow(s, caps.get(s.key), spent.get(s.key, 0)) for s in Specialist.objects.all()]


def activity_page(*, workspace_id: int, limit: int = 100) -> list[Activity]:
    return list(Activity.objects.filter(workspace_id=workspace_id).select_related("actor").order_by("-id")[:limit])


# --- Payments -----------------------------------------------------------------------------------


def subscription_of(*, workspace_id: int) -> Subscription | None:
    """The workspace's running (not ended) Stripe subscription, if any."""
    found = Subscription.objects.select_related("plan").filter(workspace_id=workspace_id).first()
    return found if found is not None and found.is_live else None


@dataclass(frozen=True)
class PaymentState:
    subscription: Subscription | None
    processing: list[Purchase]

    @property
    def past_due(self) -> bool:
        return self.subscription is not None and self.subscription.past_due_since is not None


def payment_state(*, workspace_id: int, since: datetime) -> PaymentState:
    """What the balance region says about money in flight: a running subscription, payments still clearing."""
    processing = list(
        Purchase.objects.select_related("pack", "plan")
        .filter(workspace_id=workspace_id, status=Purchase.Status.PROCESSING, created_at__gte=since)
        .order_by("-id")[:5]
    )
    return PaymentState(subscription=subscription_of(workspace_id=workspace_id), processing=processing)
