"""Every read the pages and the API need."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Generic, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from billing.bounds import fits_column
from billing.catalog_cache import Catalog, catalog, specialist_known
from billing.models import (
    Action,
    Activity,
    LedgerEntry,
    Membership,
    Plan,
    Purchase,
    Specialist,
    Subscription,
    TopUpPack,
    Wallet,
    Workspace,
    epoch_us,
)

T = TypeVar("T")


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
    return _with_discounts(_active(TopUpPack))


def _with_discounts(packs: list[TopUpPack]) -> list[PackOffer]:
    if not packs:
        return []
    base = min(packs, key=lambda pack: pack.amount)
    return [PackOffer(pack=pack, discount_percent=pack.discount_percent(base)) for pack in packs]


def catalog_overview() -> CatalogOverview:
    actions = list(Action.objects.filter(is_active=True).select_related("specialist"))
    groups = [ActionGroup("AI usage (internal)", [a for a in actions if a.is_ai])]
    for specialist in Specialist.objects.all():
        members = [a for a in actions if not a.is_ai and a.specialist_id == specialist.key]
        if members:
            groups.append(ActionGroup(specialist.label, members))
    return CatalogOverview(
        plans=active_plans(),
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


# The holds beside the ledger: the wallet's map (what charges read under the lock) must be the
# active Hold rows. An active row may be missing from the map once it has expired (the next hold
# placed prunes it); anything else is a hold reserving too much, too little, or nothing.
_HOLDS_AUDIT_SQL = """
WITH mapped AS (
    SELECT w.workspace_id, h.key AS hold, (h.value ->> 0)::bigint AS amount, (h.value ->> 1)::bigint AS expires_us
    FROM billing_wallet w CROSS JOIN jsonb_each(w.holds) h
    WHERE w.holds <> '{}'::jsonb
), active AS (
    SELECT workspace_id, id::text AS hold, amount, (extract(epoch FROM expires_at) * 1000000)::bigint AS expires_us
    FROM billing_hold WHERE status = 'active'
)
SELECT ws.id, ws.name, coalesce(m.hold, a.hold), m.amount, a.amount, m.expires_us, a.expires_us
FROM mapped m FULL JOIN active a ON a.workspace_id = m.workspace_id AND a.hold = m.hold
JOIN billing_workspace ws ON ws.id = coalesce(m.workspace_id, a.workspace_id)
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


# --- Reads every settings request makes ----------------------------------------------------------

# Every settings request (the balance poll every few seconds among them) starts by reading the
# user's memberships with their workspace, plan and wallet, and the billing page reads the plans
# and packs on offer. Django compiles a queryset's SQL anew on each request and binds it
# client-side, so the server parses and plans it anew too, which for these small reads costs more
# than running them. These statements are written once per process from the models' own fields
# (a field a migration adds is in them), bound server-side so psycopg can keep them prepared,
# and their rows become model instances as the ORM would make them.


@dataclass(frozen=True)
class _Columns:
    """One model's columns in a hand-written SELECT, and how its rows become instances."""

    model: type[models.Model]
    select: list[str]  # "alias"."column", in the model's field order
    attnames: list[str]
    converters: list[tuple[int, list]]  # (position, that field's from-database converters) where it has any

    def instance(self, row: tuple, start: int, db: BaseDatabaseWrapper) -> models.Model | None:
        """The instance whose columns begin at ``start`` in ``row``; None for a LEFT JOIN's row of NULLs."""
        values = list(row[start : start + len(self.attnames)])
        if values[0] is None:
            return None
        for position, converters in self.converters:
            for convert in converters:
                values[position] = convert(values[position], None, db)
        return self.model.from_db(db.alias, self.attnames, values)


@functools.cache
def _columns(model: type[models.Model], alias: str) -> _Columns:
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(alias)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, found))
    quote = connection.ops.quote_name
    return _Columns(model, [f"{alias}.{quote(f.column)}" for f in fields], [f.attname for f in fields], converters)


def _planned_cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor whose statements the server may keep planned.

    A server-side-bound psycopg cursor lets psycopg prepare a statement once it has run
    ``prepare_threshold`` times on the connection (the settings' DB_PREPARE_THRESHOLD). It is
    wrapped like Django's own, so execute wrappers and error translation apply. Where queries
    are logged (DEBUG, assertNumQueries, the benchmark's audit) it is Django's own cursor: the
    log must show the SQL as run, which psycopg keeps neither for a prepared statement nor with
    its parameters in place of $1, $2.
    """
    if db.queries_logged:
        return db.cursor()
    # What db.cursor() does, with psycopg's server-side-binding cursor in place of Django's.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        return db.make_cursor(ServerBindingCursor(db.connection))


@dataclass(frozen=True)
class Read(Generic[T]):
    """A selector's query and what makes its answer of the rows: run alone, or with others in one round trip.

    A page that shows several regions reads them all before rendering; each query is small, so
    the round trip between the app and PostgreSQL is a good share of its cost.
    """

    sql: str
    params: Sequence[object] | Mapping[str, object]
    parse: Callable[[list[tuple]], T]

    def run(self) -> T:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return self.parse(cursor.fetchall())


def reads_run(*reads: Read) -> list:
    """The answers of several reads, in order, from one round trip.

    The statements are bound here, client-side, as Django binds every query, and sent as one
    string: PostgreSQL runs them one after the other and sends each one's rows back, which the
    cursor hands over one result set at a time.
    """
    if len(reads) == 1:
        return [reads[0].run()]
    sql = ";\n".join(connection.ops.compose_sql(read.sql, read.params) for read in reads)
    answers = []
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for n, read in enumerate(reads):
            if n and not cursor.nextset():
                raise RuntimeError(f"{len(reads)} queries were sent and {n} answered")
            answers.append(read.parse(cursor.fetchall()))
    return answers


def _planned_rows(sql: str, params: list, db: BaseDatabaseWrapper | None = None) -> list[tuple]:
    with _planned_cursor(db or connections[DEFAULT_DB_ALIAS]) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_MEMBERSHIP_MODELS = (Membership, Workspace, Plan, Wallet, Subscription)


def _membership_joins() -> str:
    table = {model: connection.ops.quote_name(model._meta.db_table) for model in _MEMBERSHIP_MODELS}
    return (
        f" JOIN {table[Workspace]} w ON w.id = m.workspace_id"
        f" JOIN {table[Plan]} p ON p.id = w.plan_id"
        f" LEFT JOIN {table[Wallet]} wl ON wl.workspace_id = w.id"
        f" LEFT JOIN {table[Subscription]} s ON s.workspace_id = w.id"  # the past-due banner, the portal button
    )


@functools.cache
def _membership_layout() -> tuple[_Columns, ...]:
    aliases = ("m", "w", "p", "wl", "s")
    return tuple(_columns(model, alias) for model, alias in zip(_MEMBERSHIP_MODELS, aliases, strict=True))


@functools.cache
def _memberships_statement() -> str:
    select = [column for columns in _membership_layout() for column in columns.select]
    table = connection.ops.quote_name(Membership._meta.db_table)
    return (
        f"SELECT {', '.join(select)} FROM {table} m{_membership_joins()}"
        " WHERE m.user_id = %s ORDER BY m.created_at, m.id"
    )


def _membership(row: tuple, start: int, db: BaseDatabaseWrapper) -> Membership | None:
    """The membership whose columns begin at ``start``, its workspace, plan, wallet and subscription attached."""
    instances = []
    for columns in _membership_layout():
        instances.append(columns.instance(row, start, db))
        start += len(columns.attnames)
    membership, workspace, plan, wallet, subscription = instances
    if membership is None:  # the user's row alone: no memberships
        return None
    # A subscription Stripe ended is history: only a running one changes what the page offers.
    workspace.live_subscription = subscription if subscription is not None and subscription.is_live else None
    Membership._meta.get_field("workspace").set_cached_value(membership, workspace)
    Workspace._meta.get_field("plan").set_cached_value(workspace, plan)
    wallet_workspace = Wallet._meta.get_field("workspace")
    wallet_workspace.remote_field.set_cached_value(workspace, wallet)
    if wallet is not None:
        wallet_workspace.set_cached_value(wallet, workspace)
    return membership


def memberships_of(*, user_id: int) -> list[Membership]:
    """The user's memberships, oldest first, each with its workspace, plan and wallet loaded (one query)."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection proxy looks it up on every attribute otherwise
    return [_membership(row, 0, db) for row in _planned_rows(_memberships_statement(), [user_id], db)]


@functools.cache
def _user_statement() -> str:
    user_model = get_user_model()
    select = [*_columns(user_model, "u").select]
    select += [column for columns in _membership_layout() for column in columns.select]
    quote = connection.ops.quote_name
    return (
        f"SELECT {', '.join(select)} FROM {quote(user_model._meta.db_table)} u"
        f" LEFT JOIN ({quote(Membership._meta.db_table)} m{_membership_joins()}) ON m.user_id = u.id"
        " WHERE u.id = %s ORDER BY m.created_at, m.id"
    )


def user_with_memberships(*, user_id: int) -> tuple[AbstractBaseUser | None, list[Membership]]:
    """The user and their memberships as ``memberships_of`` gives them, in one round trip (None: no such user)."""
    db = connections[DEFAULT_DB_ALIAS]
    user_columns = _columns(get_user_model(), "u")
    rows = _planned_rows(_user_statement(), [user_id], db)
    if not rows:
        return None, []
    memberships = [_membership(row, len(user_columns.attnames), db) for row in rows]
    return user_columns.instance(rows[0], 0, db), [m for m in memberships if m is not None]


def _active(model: type[models.Model]) -> list:
    """The model's active rows, in its Meta ordering (plans and packs)."""
    columns = _columns(model, "t")
    order = ", ".join(
        f"t.{connection.ops.quote_name(model._meta.get_field(name).column)}" for name in model._meta.ordering
    )
    sql = f"SELECT {', '.join(columns.select)} FROM {connection.ops.quote_name(model._meta.db_table)} t"
    db = connections[DEFAULT_DB_ALIAS]
    return [columns.instance(row, 0, db) for row in _planned_rows(f"{sql} WHERE t.is_active ORDER BY {order}", [], db)]


def active_plans() -> list[Plan]:
    return _active(Plan)


@dataclass(frozen=True)
class Offers:
    plans: list[Plan]
    packs: list[PackOffer]


# The plans and the packs on offer in one round trip, each in its model's order (plans by sort
# order then id, packs by sort order then amount: the last column).
_OFFERS_SQL = """
SELECT 'plan', id, key, name, price_cents, allowance, per_seat, sort_order, id FROM billing_plan WHERE is_active
UNION ALL
SELECT 'pack', id, key, '', price_cents, amount, false, sort_order, amount FROM billing_topuppack WHERE is_active
ORDER BY 1, 8, 9
"""


_offers_cache: tuple[Catalog, Offers] | None = None  # (a catalog snapshot, the offers read with it)


def offers() -> Offers:
    """The active plans and packs as the billing page offers them, read again with each catalog snapshot.

    So a price or pack change shows on the page when the catalog the engine validates by is
    reloaded (``billing.catalog.TTL_SECONDS``, or at once in the process that made the change),
    without a query on every page view.
    """
    global _offers_cache
    snapshot = catalog()
    cached = _offers_cache
    if cached is None or cached[0] is not snapshot:
        cached = _offers_cache = (snapshot, _offers_read())
    return cached[1]


def _offers_read() -> Offers:
    """The active plans and packs (the fields the page shows), in one query."""
    plans, packs = [], []
    for kind, pk, key, name, price_cents, credits_, per_seat, sort_order, _ in _planned_rows(_OFFERS_SQL, []):
        if kind == "plan":
            plans.append(
                Plan(id=pk, key=key, name=name, price_cents=price_cents, allowance=credits_, per_seat=per_seat)
            )
        else:
            packs.append(TopUpPack(id=pk, key=key, amount=credits_, price_cents=price_cents, sort_order=sort_order))
    return Offers(plans=plans, packs=_with_discounts(packs))


# --- Settings → Billing & Credits ---------------------------------------------------------------

NEARLY_USED_PERCENT = 80
LOW_FRACTION = (1, 5)  # the low-balance alert: the total under 20 % of the period's allowance


def balance_level(*, plan_balance: int, topup_balance: int, allowance: int) -> str:
    """What the low-balance alerts go by: "empty" (bucket used up), "low" (total under 20 %) or "ok"."""
    if allowance and plan_balance == 0:
        return "empty"
    num, den = LOW_FRACTION
    if allowance and (plan_balance + topup_balance) * den < allowance * num:
        return "low"
    return "ok"


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
    reserved: int = 0  # by active holds (running jobs): counted against what charges may use

    @property
    def total(self) -> int:
        return self.plan_balance + self.topup_balance

    @property
    def available(self) -> int:
        """What a charge or a new hold may use now: the total less what holds reserve."""
        return max(self.total - self.reserved, 0)

    @property
    def used(self) -> int:
        return max(self.allowance - self.plan_balance, 0)

    @property
    def used_percent(self) -> int:
        return min(100, self.used * 100 // self.allowance) if self.allowance else 100

    @property
    def level(self) -> str:
        """ "empty" when the bucket is used up, "low" when nearly (or the alert emails went out), else "ok"."""
        alerted = balance_level(
            plan_balance=self.plan_balance, topup_balance=self.topup_balance, allowance=self.allowance
        )
        if alerted == "empty" or self.plan_balance == 0:
            return "empty"
        return "low" if alerted == "low" or self.used_percent >= NEARLY_USED_PERCENT else "ok"


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
        reserved=wallet.reserved_at(timezone.now()) if wallet.holds else 0,
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


# Names of tools and specialists come from the in-process catalog snapshot (billing.catalog), so
# the pages join nothing to label a row. Retired actions are not in it: those few are read.


class ToolName(NamedTuple):
    key: str
    label: str
    unit: str


_snapshot_tools: tuple[object, dict[int, ToolName]] = (None, {})


def _catalog_tools() -> dict[int, ToolName]:
    """The snapshot's actions by id, worked out once per snapshot (a reload replaces it, never edits it)."""
    global _snapshot_tools
    snapshot = catalog()
    if _snapshot_tools[0] is not snapshot:
        _snapshot_tools = (snapshot, {a.id: ToolName(a.key, a.label, a.unit) for a in snapshot.actions.values()})
    return _snapshot_tools[1]


def tool_names(ids: Iterable[int | None] = ()) -> dict[int, ToolName]:
    """The catalog's actions by id, and any of ``ids`` it lacks (retired actions) from the database."""
    names = _catalog_tools()
    missing = {i for i in ids if i is not None and i not in names}
    if missing:
        names = dict(names)  # the snapshot's own stays as it is
        rows = Action.objects.filter(id__in=missing).values_list("id", "key", "label", "unit")
        names.update((pk, ToolName(key, label, unit)) for pk, key, label, unit in rows)
    return names


def tool_named(key: str) -> tuple[int, ToolName] | None:
    """An action's id and names by its key: the catalog's first, a retired one from the database."""
    found = catalog().actions.get(key)
    if found is not None:
        return found.id, ToolName(found.key, found.label, found.unit)
    if not fits_column(key, Action, "key"):  # a key no action could have (NUL, too long): no lookup
        return None
    row = Action.objects.filter(key=key).values_list("id", "key", "label", "unit").first()
    return None if row is None else (row[0], ToolName(*row[1:]))


def specialist_names() -> dict[str, str]:
    """Every specialist's label by key, in the catalog's order (sort order, then key)."""
    return catalog().specialists


def _specialist_label(key: str | None, names: dict[str, str]) -> str:
    if key is None:
        return ""
    if key not in names and specialist_known(key):  # added since the snapshot was taken
        names = catalog().specialists
    return names.get(key, key)


_LEDGER_TABLE = LedgerEntry._meta.db_table
# The time is read as a UTC timestamp and made aware here: psycopg decodes that type in C, while
# the loader Django installs for timestamptz parses each value in Python (a CSV chunk has 2,000).
# These rows go to the customer (page, CSV, API): ``reason`` is their text; ``internal_note`` is
# staff's and is never read here.
_LEDGER_COLUMNS = (
    "id, created_at AT TIME ZONE 'UTC', kind, specialist_id, action_id, quantity, plan_delta, topup_delta,"
    " plan_balance_after, topup_balance_after, byok, list_amount, lead, reason, idempotency_key, external_ref,"
    " coalesce(metadata->>'receipt_url', '')"
)
_KIND_LABELS = dict(LedgerEntry.Kind.choices)


class LedgerRow(NamedTuple):
    """A ledger entry as the pages and the CSV export show it: its tool and specialist named.

    A named tuple: a page makes 25 of them, a CSV export one per entry, and a tuple is the
    cheapest immutable record Python builds.
    """

    pk: int
    created_at: datetime
    kind: str
    specialist: str  # the specialist's label, "" when none
    tool: ToolName | None
    quantity: int | None
    plan_delta: int
    topup_delta: int
    plan_balance_after: int
    topup_balance_after: int
    byok: bool
    list_amount: int | None
    lead: str
    reason: str
    idempotency_key: str
    external_ref: str
    receipt_url: str  # a purchase's receipt or invoice at the payment provider, "" when none
    specialist_key: str  # the specialist's key (the API's), "" when none

    @property
    def amount(self) -> int:
        """Net change to the total balance (negative for a debit)."""
        return self.plan_delta + self.topup_delta

    @property
    def kind_label(self) -> str:
        return _KIND_LABELS.get(self.kind, self.kind)


def _ledger_conditions(workspace_id: int, filters: LedgerFilters, zone: ZoneInfo) -> tuple[list[str], list]:
    where, params = ["workspace_id = %s"], [workspace_id]
    if filters.specialist:
        where.append("specialist_id = %s")
        params.append(filters.specialist)
    if filters.action:
        tool = tool_named(filters.action)
        if tool is None:
            where.append("FALSE")
        else:
            where.append("action_id = %s")
            params.append(tool[0])
    if filters.kind:
        where.append("kind = %s")
        params.append(filters.kind)
    # Dates are the reader's days: from local midnight to the next one after date_to.
    if filters.date_from:
        where.append("created_at >= %s")
        params.append(datetime.combine(filters.date_from, time.min, tzinfo=zone))
    if filters.date_to:
        where.append("created_at < %s")
        params.append(datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=zone))
    return where, params


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerRow]
    next_cursor: int | None


def ledger_read(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, before: int | None = None, limit: int = 25
) -> Read[LedgerPage]:
    """Newest first, ``limit`` at a time; the cursor is the last id shown (keyset, never OFFSET).

    Without dates the list runs down the ids. With a date range it runs down the times, so
    the (workspace, created_at, id) index starts inside the range instead of walking every
    newer entry to reach it; the cursor is still an id, whose time is looked up.
    """
    where, params = _ledger_conditions(workspace_id, filters, zone)
    by_time = filters.date_from is not None or filters.date_to is not None
    if before is not None:
        if by_time:
            # Keyset on (created_at, id): rows strictly before the cursor entry in that order.
            where.append(
                f"(created_at, id) < ((SELECT created_at FROM {_LEDGER_TABLE} WHERE workspace_id = %s AND id = %s), %s)"
            )
            params += [workspace_id, before, before]
        else:
            where.append("id < %s")
            params.append(before)
    order = "created_at DESC, id DESC" if by_time else "id DESC"
    sql = f"SELECT {_LEDGER_COLUMNS} FROM {_LEDGER_TABLE} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s"

    def page(found: list[tuple]) -> LedgerPage:
        more = len(found) > limit
        found = found[:limit]
        tools, specialists = tool_names(row[4] for row in found), specialist_names()
        rows = [
            LedgerRow(
                pk,
                at.replace(tzinfo=UTC),
                kind,
                _specialist_label(specialist, specialists),
                tools.get(action),
                *rest,
                specialist or "",
            )
            for pk, at, kind, specialist, action, *rest in found
        ]
        return LedgerPage(entries=rows, next_cursor=rows[-1].pk if more and rows else None)

    return Read(sql, [*params, limit + 1], page)


def ledger_page(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, before: int | None = None, limit: int = 25
) -> LedgerPage:
    """One page of the ledger (see ``ledger_read``)."""
    return ledger_read(workspace_id=workspace_id, filters=filters, zone=zone, before=before, limit=limit).run()


def ledger_export(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, chunk: int = 2_000
) -> Iterator[LedgerRow]:
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
    runs_out_on: date | None  # the plan bucket, at this period's pace; None: beyond the forecast's horizon
    total_runs_out_on: date | None  # the bucket and the top-up credits after it
    plan_balance: int  # what is left in the bucket, and
    topup_balance: int  # what the second forecast adds to the first
    spent_today: dict[str, int]  # credits per specialist key on ``today``, for the daily caps
    daily_caps: dict[str, int]  # the caps themselves, read in the same query


# One round trip for the usage region and the caps beside it, each row labelled: the period's day
# counters ("used"), one row per tool and specialist with its days (as offsets from the period's
# first) and credits in two parallel arrays, so a month comes back as a dozen rows rather than a
# few hundred (converting rows, not reading them, was most of this query's time); the follow-ups
# reply detection skipped and what they would have cost, as one row ("refused"); and the
# workspace's daily caps, a few rows at most ("cap").
_USAGE_SQL = """
SELECT 'used', action_id, specialist_id, array_agg(day - %(start)s), array_agg(credits),
       sum(list_credits)::bigint, sum(quantity)::bigint, sum(events)::bigint
FROM billing_dailyusage
WHERE workspace_id = %(workspace)s AND day >= %(start)s AND day <= %(until)s
GROUP BY action_id, specialist_id
UNION ALL
SELECT 'refused', NULL, NULL, NULL, NULL, coalesce(sum(credits), 0)::bigint, coalesce(sum(refusals), 0)::bigint, 0
FROM billing_refusaltally
WHERE workspace_id = %(workspace)s AND day >= %(start)s AND day <= %(today)s AND code = 'sequence_paused'
UNION ALL
SELECT 'cap', NULL, specialist_id, NULL, NULL, daily_cap, 0, 0
FROM billing_specialistcap
WHERE workspace_id = %(workspace)s
"""


def usage_read(*, wallet: Wallet, today: date) -> Read[UsageSummary]:
    """The current period's usage from the day counters (never the ledger), and the forecast.

    ``wallet`` comes with its workspace, as the membership read loads them.
    """
    zone = wallet.workspace.zone
    start = wallet.period_start.astimezone(zone).date()
    end = wallet.period_end.astimezone(zone).date()
    params = {"workspace": wallet.workspace_id, "start": start, "until": max(today, start), "today": today}
    return Read(_USAGE_SQL, params, functools.partial(_usage, wallet=wallet, today=today, start=start, end=end))


def usage_summary(*, wallet: Wallet, today: date) -> UsageSummary:
    """The period's usage (see ``usage_read``)."""
    return usage_read(wallet=wallet, today=today).run()


def _usage(rows: list[tuple], *, wallet: Wallet, today: date, start: date, end: date) -> UsageSummary:
    days = [start + timedelta(days=n) for n in range((min(today, end) - start).days + 1)]
    by_day: dict[date, dict[str, int]] = {day: {} for day in days}
    dates = dict(enumerate(days))  # offset -> date, grown for days past the period's end
    today_offset = (today - start).days
    tools: dict[int, list[int]] = {}  # action id: [credits, list credits, quantity, events]
    by_specialist: dict[str, int] = {}
    spent_today: dict[str, int] = {}
    daily_caps: dict[str, int] = {}
    followups_skipped = reply_saved = 0
    names = tool_names(row[1] for row in rows)
    for what, action, specialist, offsets, amounts, list_credits, quantity, events in rows:
        if what == "cap":
            daily_caps[specialist] = list_credits
            continue
        if what == "refused":
            reply_saved, followups_skipped = list_credits, quantity
            continue
        key = names[action].key
        credits_ = 0
        for offset, amount in zip(offsets, amounts, strict=True):
            day = dates.get(offset) or dates.setdefault(offset, start + timedelta(days=offset))
            spent = by_day.setdefault(day, {})
            spent[key] = spent.get(key, 0) + amount
            credits_ += amount
            if offset == today_offset:
                spent_today[specialist] = spent_today.get(specialist, 0) + amount
        sums = tools.setdefault(action, [0, 0, 0, 0])
        sums[0] += credits_
        sums[1] += list_credits
        sums[2] += quantity
        sums[3] += events
        by_specialist[specialist] = by_specialist.get(specialist, 0) + credits_
    tool_list = sorted(
        (
            ToolUsage(names[action].key, names[action].label, *sums, unit=names[action].unit)
            for action, sums in tools.items()
        ),
        key=lambda t: -t.credits,
    )
    total = sum(t.credits for t in tool_list)
    specialists: dict[str, int] = {}
    labels = specialist_names()
    for key, amount in by_specialist.items():
        label = _specialist_label(key, labels)
        specialists[label] = specialists.get(label, 0) + amount
    # The forecast: the pace so far this period, carried forward.
    elapsed = max((today - start).days + 1, 1)

    def lasts_until(balance: int) -> date | None:
        if total <= 0:
            return None
        days = balance * elapsed // total  # whole days the balance lasts at the average daily spend
        return today + timedelta(days=days) if days <= FORECAST_HORIZON_DAYS else None

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
        followups_skipped=followups_skipped,
        reply_saved=reply_saved,
        runs_out_on=lasts_until(wallet.plan_balance),
        total_runs_out_on=lasts_until(wallet.total),
        plan_balance=wallet.plan_balance,
        topup_balance=wallet.topup_balance,
        spent_today=spent_today if start <= today else {},
        daily_caps=daily_caps,
    )


@dataclass(frozen=True)
class CapRow:
    specialist: str  # key
    label: str
    daily_cap: int | None
    spent_today: int

    @property
    def percent(self) -> int:
        if not self.daily_cap:
            return 100 if self.daily_cap == 0 else 0
        return min(100, self.spent_today * 100 // self.daily_cap)


def caps_overview(
    *,
    workspace_id: int,
    today: date,
    spent_today: dict[str, int] | None = None,
    daily_caps: dict[str, int] | None = None,
) -> list[CapRow]:
    """Every specialist's cap and spend on ``today``; pass what the usage read already has of them."""
    if daily_caps is None:
        daily_caps = dict(
            _planned_rows(
                "SELECT specialist_id, daily_cap FROM billing_specialistcap WHERE workspace_id = %s", [workspace_id]
            )
        )
    if spent_today is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT specialist_id, sum(credits)::bigint FROM billing_dailyusage"
                " WHERE workspace_id = %s AND day = %s GROUP BY specialist_id",
                [workspace_id, today],
            )
            spent_today = dict(cursor.fetchall())
    return [
        CapRow(key, label, daily_caps.get(key), spent_today.get(key, 0)) for key, label in specialist_names().items()
    ]


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
