"""Every billing table is either keyed by its workspace or part of the shared catalog, and the
statements of charging, holds and resets name the workspace they touch.

That is what makes sharding by ``workspace_id`` (Citus, docs/scaling.md) configuration rather
than a rewrite: a distributed table needs its distribution column, every unique constraint on it
must include that column, and a statement that binds the column to a value is routed to one
shard. The statements are read as PostgreSQL itself parses them (pglast, PostgreSQL's own
parser), from what the services really send: every ``psycopg`` execute is recorded while they
run (the statements still run; nothing is replaced).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest
from django.apps import apps
from django.db import models
from pglast import ast, parse_sql
from pglast.visitors import Visitor

from billing.errors import InsufficientCredits
from billing.models import Plan, Subscription, Workspace
from billing.services import charge, charge_batch, workspace_create
from billing.services.holds import hold_place, hold_release, hold_settle
from billing.services.resets import periods_reset
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

# Shared by every workspace: reference tables under Citus (a copy on every node).
CATALOG = {"billing.Plan", "billing.TopUpPack", "billing.Specialist", "billing.Action", "billing.CatalogChange"}
# Neither a workspace's nor the catalog, each for its reason: they stay on the coordinator.
GLOBAL = {
    # Stripe's inbox, keyed by Stripe's event id: an event is stored before it is known whose it is.
    "billing.StripeEvent": "stored before its workspace is known (workspace may be NULL)",
    # Sigora's own services: one token acts on any workspace it names.
    "api.ServiceToken": "a service token acts on every workspace",
    # A person's address and its verification links (issue 18): a user's, whatever workspaces they are in.
    "billing.EmailAddress": "a user's address, not a workspace's",
    "billing.EmailToken": "a verification link is a user's, found by its token alone",
}
APPS = ("billing", "api")
# Unique keys of workspace tables that do not hold the workspace, because they are how a row is
# found by someone who does not know its workspace yet. Under Citus each becomes a lookup table
# (key → workspace_id) beside its table, written in the same transaction (docs/scaling.md).
FOUND_WITHOUT_WORKSPACE = {
    "billing.Hold.settled_entry_id": "one hold per settling entry: both the same workspace's, made (workspace_id, …)",
    "billing.Invitation.token_hash": "an invitation link carries only its token",
    "billing.Subscription.stripe_subscription_id": "Stripe's webhooks name the subscription",
    "billing.Purchase.stripe_checkout_session_id": "Stripe's webhooks name the Checkout Session",
    "billing.Purchase.stripe_payment_intent_id": "Stripe's webhooks name the payment",
    "billing.Purchase.stripe_invoice_id": "Stripe's webhooks name the invoice",
    "api.ApiKey.prefix": "an API key is found by its own prefix",
    "billing.FreeGrant.address": "one Free grant per address across all workspaces: the rule itself (issue 18)",
}


def workspace_column(model: type[models.Model]) -> str | None:
    """The column naming the workspace a row belongs to: the workspace's own id, or its foreign key."""
    if model is Workspace:
        return "id"
    for each in model._meta.concrete_fields:
        if isinstance(each, models.ForeignKey) and each.related_model is Workspace:
            return each.column
    return None


def billing_models() -> list[type[models.Model]]:
    return [m for app in APPS for m in apps.get_app_config(app).get_models() if not m._meta.auto_created]


def scoped_tables() -> dict[str, str]:
    """Table name → its workspace column, for every table keyed by workspace."""
    found = {}
    for model in billing_models():
        if model._meta.label not in CATALOG | set(GLOBAL):
            found[model._meta.db_table] = workspace_column(model)
    return found


# --- The schema --------------------------------------------------------------------------------


def test_every_billing_table_is_keyed_by_its_workspace_or_is_catalog():
    unplaced = [
        m._meta.label
        for m in billing_models()
        if m._meta.label not in CATALOG | set(GLOBAL) and workspace_column(m) is None
    ]
    assert unplaced == [], f"tables with no workspace_id that are not catalog (say which, in this file): {unplaced}"
    for model in billing_models():
        if model._meta.label in CATALOG:
            assert workspace_column(model) is None, f"{model._meta.label} is catalog but names a workspace"
    assert scoped_tables()["billing_ledgerentry"] == "workspace_id"
    assert scoped_tables()["billing_workspace"] == "id"


def test_every_unique_constraint_of_a_workspace_table_includes_the_workspace():
    """Citus enforces uniqueness only within a shard: a unique key must hold the distribution column.

    Two kinds of exception, each named: primary keys on ``id`` (they become ``(workspace_id, id)``
    when the tables are distributed) and the keys in ``FOUND_WITHOUT_WORKSPACE``.
    """
    missing = []
    for model in billing_models():
        column = workspace_column(model)
        if model._meta.label in CATALOG | set(GLOBAL) or model is Workspace:
            continue
        opts = model._meta
        uniques = [[f.column] for f in opts.concrete_fields if f.unique and not f.primary_key]
        uniques += list(_unique_constraints(model))
        missing += [f"{opts.label}.{'+'.join(cols)}" for cols in uniques if column not in cols]
    assert sorted(missing) == sorted(FOUND_WITHOUT_WORKSPACE), "a unique key without the workspace: say why here"


def _unique_constraints(model: type[models.Model]) -> Iterator[list[str]]:
    opts = model._meta
    for constraint in opts.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.fields:
            yield [opts.get_field(name).column for name in constraint.fields]
    for together in opts.unique_together:
        yield [opts.get_field(name).column for name in together]


# --- The statements ----------------------------------------------------------------------------


_PLACEHOLDER = re.compile(r"%%|%\(\w+\)[sbt]|%[sbt]")


def as_postgres(sql: str) -> str:
    """psycopg's placeholders (``%s``, ``%(name)s``, ``%(name)b``) as PostgreSQL's ``$n``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(counter)}", sql)


def _conjuncts(expr: ast.Node | None) -> list[ast.Node]:
    if expr is None:
        return []
    if isinstance(expr, ast.BoolExpr) and expr.boolop == 0:  # AND
        return [part for arg in expr.args for part in _conjuncts(arg)]
    return [expr]


def _column(node: ast.Node) -> tuple[str | None, str] | None:
    """(qualifier, name) of a column reference, through casts."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.ColumnRef) and all(isinstance(f, ast.String) for f in node.fields):
        names = [f.sval for f in node.fields]
        return (names[-2] if len(names) > 1 else None, names[-1])
    return None


def _is_value(node: ast.Node) -> bool:
    """A parameter or a constant (through casts): one value, known when the statement runs."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.ParamRef | ast.A_Const)


@dataclass
class Level:
    """One SELECT/UPDATE/DELETE: the ranges in its FROM and the conditions that join and filter them."""

    scoped: dict[str, str] = field(default_factory=dict)  # alias → workspace column
    bound_ranges: set[str] = field(default_factory=set)  # aliases whose every column is a known value
    quals: list[ast.Node] = field(default_factory=list)


def _collect_from(items, level: Level, ctes: dict[str, bool], scoped: dict[str, str]) -> None:
    for item in items or ():
        if isinstance(item, ast.RangeVar):
            alias = item.alias.aliasname if item.alias else item.relname
            if item.relname in scoped:
                level.scoped[alias] = scoped[item.relname]
            elif ctes.get(item.relname):
                level.bound_ranges.add(alias)  # a CTE whose own tables are all bound to the workspace
        elif isinstance(item, ast.RangeFunction):
            calls = [fn[0] for fn in item.functions]
            args = [a for call in calls for a in (getattr(call, "args", None) or ())]
            if item.alias and all(_is_value(a) for a in args):
                level.bound_ranges.add(item.alias.aliasname)  # unnest(%(ids)s::bigint[]) AS v(...)
        elif isinstance(item, ast.JoinExpr):
            _collect_from([item.larg, item.rarg], level, ctes, scoped)
            level.quals += _conjuncts(item.quals)
        elif isinstance(item, ast.RangeSubselect) and item.alias:
            level.bound_ranges.add(item.alias.aliasname)  # its own level is checked on its own


def unbound_references(sql: str, scoped: dict[str, str]) -> list[str]:
    """Each workspace table a statement reads or writes without naming the workspace: ``alias (table)``.

    A reference is bound when a condition at its own level sets its workspace column equal to (or
    ``= ANY`` of) a parameter or constant, to a column of ``unnest`` over parameters, of a CTE
    whose tables are all bound, or to the workspace column of another bound reference (a join
    within one workspace: co-located under Citus).
    """
    problems: list[str] = []
    for raw in parse_sql(as_postgres(sql)):
        ctes: dict[str, bool] = {}
        for node in _levels_in_order(raw.stmt):
            if isinstance(node, ast.CommonTableExpr):
                ctes[node.ctename] = not _level_problems(node.ctequery, ctes, scoped, [])
                continue
            _level_problems(node, ctes, scoped, problems)
    return problems


def _levels_in_order(stmt: ast.Node) -> Iterator[ast.Node]:
    """The statement's CTEs first, in order (each may use the ones before), then every other level."""
    with_clause = getattr(stmt, "withClause", None)
    yield from (with_clause.ctes if with_clause else ()) or ()
    yield stmt


class _Subqueries(Visitor):
    def __init__(self) -> None:
        self.found: list[ast.Node] = []

    def visit_SelectStmt(self, ancestors, node):
        self.found.append(node)


def _level_problems(node: ast.Node, ctes: dict[str, bool], scoped: dict[str, str], problems: list[str]) -> list[str]:
    before = len(problems)
    nested = _Subqueries()
    nested(node)
    for each in [node, *[n for n in nested.found if n is not node]]:
        if isinstance(each, ast.SelectStmt) and each.op != 0:
            continue  # UNION: its arms are levels of their own
        level = Level()
        relation = getattr(each, "relation", None)
        if isinstance(each, ast.InsertStmt):
            table = relation.relname
            if table in scoped and scoped[table] not in [c.name for c in each.cols or ()]:
                problems.append(f"INSERT INTO {table} without {scoped[table]}")
            continue
        if relation is not None:
            _collect_from([relation], level, ctes, scoped)
        _collect_from(getattr(each, "fromClause", None) or getattr(each, "usingClause", None), level, ctes, scoped)
        level.quals += _conjuncts(getattr(each, "whereClause", None))
        problems += [f"{alias} ({column})" for alias, column in _unbound(level).items()]
    return problems[before:]


def _unbound(level: Level) -> dict[str, str]:
    unbound = dict(level.scoped)
    bound = set(level.bound_ranges)
    only = next(iter(level.scoped)) if len(level.scoped) == 1 and not level.bound_ranges else None
    changed = True
    while changed and unbound:
        changed = False
        for qual in level.quals:
            if not (isinstance(qual, ast.A_Expr) and qual.name and qual.name[-1].sval == "="):
                continue
            sides = [qual.lexpr, qual.rexpr]
            for this, other in (sides, sides[::-1]):
                col = _column(this)
                if col is None:
                    continue
                alias = col[0] or only
                if alias not in unbound or unbound[alias] != col[1]:
                    continue
                other_col = _column(other) if not isinstance(other, ast.A_ArrayExpr) else None
                if _is_value(other) or (other_col and (other_col[0] in bound)):
                    bound.add(alias)
                    del unbound[alias]
                    changed = True
                    break
                joined = other_col and other_col[0] in level.scoped and other_col[0] not in unbound
                if joined and level.scoped[other_col[0]] == other_col[1]:  # a join on the same workspace
                    bound.add(alias)
                    del unbound[alias]
                    changed = True
                    break
    return unbound


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every statement sent to PostgreSQL while the test runs (each still runs as it would)."""
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def recording(self, query, params=None, **kwargs):
        sent.append(query if isinstance(query, str) else query.as_string(self))
        return real(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    return sent


def _touching(sent: list[str], scoped: dict[str, str]) -> list[str]:
    names = re.compile(r"\b(" + "|".join(map(re.escape, scoped)) + r")\b")
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK", "COMMIT", "BEGIN", "SET ")
    return [s for s in dict.fromkeys(sent) if names.search(s) and not s.lstrip().upper().startswith(skip)]


@pytest.mark.django_db
def test_charging_and_holds_name_the_workspace_in_every_statement(statements):
    workspace = WorkspaceFactory()
    fund(workspace, topup=1_000)
    scoped = scoped_tables()
    statements.clear()

    charge(workspace=workspace, action="claude-haiku", quantity=10, idempotency_key="t-1")
    charge(workspace=workspace, action="claude-haiku", quantity=10, idempotency_key="t-1")  # a replay
    charge_batch(
        workspace=workspace,
        events=[{"action": "gmail-send", "idempotency_key": f"b-{n}"} for n in range(3)],
    )
    with pytest.raises(InsufficientCredits):  # a refusal: its tally too
        charge(workspace=workspace, action="claude-haiku", quantity=10_000_000, idempotency_key="t-big")
    hold = hold_place(workspace=workspace, amount=50_000, idempotency_key="h-1")
    hold_settle(workspace=workspace, hold_id=hold.pk, action="claude-haiku", quantity=5)
    other = hold_place(workspace=workspace, amount=10_000, idempotency_key="h-2")
    hold_release(workspace=workspace, hold_id=other.pk)

    sent = _touching(statements, scoped)
    assert len(sent) >= 6, sent  # the charge, batch, tally, hold statements were all seen
    problems = {sql[:120]: found for sql in sent if (found := unbound_references(sql, scoped))}
    assert problems == {}


@pytest.mark.django_db
def test_a_reset_pass_finds_its_workspaces_in_two_scans_and_writes_by_workspace(statements):
    """Two statements look across workspaces, to find the ones due (a parallel scan of every shard
    under Citus); every statement after them names its workspaces, one or an array of them."""
    opened = datetime(2027, 6, 1, tzinfo=UTC)
    due = [workspace_create(name="W", owner=UserFactory(), now=opened) for _ in range(3)]
    unpaid = workspace_create(name="W", owner=UserFactory(), plan_key="max", now=opened)
    Subscription.objects.create(
        workspace=unpaid,
        stripe_subscription_id="sub_tenancy",
        status="past_due",
        plan=Plan.objects.get(key="max"),
        seats=1,
        current_period_start=datetime(2027, 7, 1, tzinfo=UTC),
        current_period_end=datetime(2027, 8, 1, tzinfo=UTC),
        past_due_since=datetime(2027, 7, 1, tzinfo=UTC),
    )
    scoped = scoped_tables()
    statements.clear()
    summary = periods_reset(now=datetime(2027, 7, 4, 1, tzinfo=UTC))
    assert (summary.workspaces, summary.fallbacks) == (len(due) + 1, [unpaid.pk])

    sent = _touching(statements, scoped)
    problems = {sql: sorted(found) for sql, found in ((sql, unbound_references(sql, scoped)) for sql in sent) if found}
    scans = {
        "due wallets": [sql for sql in problems if "FOR UPDATE OF w SKIP LOCKED" in sql],
        "unpaid renewals": [sql for sql in problems if sql.startswith('SELECT "billing_subscription"."workspace_id"')],
    }
    assert {name: len(found) for name, found in scans.items()} == {"due wallets": 1, "unpaid renewals": 1}, problems
    assert problems[scans["due wallets"][0]] == ["s (workspace_id)", "w (workspace_id)", "ws (id)"]
    assert problems[scans["unpaid renewals"][0]] == ["billing_subscription (workspace_id)", "billing_workspace (id)"]
    others = {sql[:120]: found for sql, found in problems.items() if not any(sql in each for each in scans.values())}
    assert others == {}
    assert len(sent) >= 6, sent  # the expiries, grants, wallets, the fallback's lock and entries were seen


# --- The checker itself: it must see what is missing ---------------------------------------------


SCOPED = {"billing_wallet": "workspace_id", "billing_ledgerentry": "workspace_id", "billing_workspace": "id"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM billing_wallet WHERE workspace_id = %(ws)s",
        "SELECT 1 FROM billing_wallet w JOIN billing_workspace ws ON ws.id = w.workspace_id WHERE ws.id = %s",
        "UPDATE billing_wallet w SET x = 1 FROM unnest(%(ids)s::bigint[]) v(ws) WHERE w.workspace_id = v.ws",
        "WITH a AS (SELECT * FROM billing_wallet WHERE workspace_id = %s) SELECT * FROM a JOIN billing_ledgerentry l"
        " ON l.workspace_id = a.workspace_id",
        "INSERT INTO billing_ledgerentry (workspace_id, kind) VALUES (%s, 'x')",
        "SELECT * FROM billing_ledgerentry WHERE workspace_id = ANY(%(ids)s)",
    ],
)
def test_the_checker_accepts_statements_bound_to_a_workspace(sql):
    assert unbound_references(sql, SCOPED) == []


@pytest.mark.parametrize(
    ("sql", "unbound"),
    [
        ("SELECT * FROM billing_wallet WHERE period_end < %s", ["billing_wallet (workspace_id)"]),
        ("SELECT * FROM billing_wallet w WHERE w.workspace_id > %s", ["w (workspace_id)"]),
        ("SELECT * FROM billing_wallet w WHERE %s IS NULL OR w.workspace_id = %s", ["w (workspace_id)"]),
        (
            "SELECT 1 FROM billing_wallet w JOIN billing_workspace ws ON ws.id = w.workspace_id",
            ["w (workspace_id)", "ws (id)"],
        ),
        ("UPDATE billing_wallet SET x = 1", ["billing_wallet (workspace_id)"]),
        (
            "INSERT INTO billing_ledgerentry (kind) VALUES ('x')",
            ["INSERT INTO billing_ledgerentry without workspace_id"],
        ),
        (
            "SELECT (SELECT count(*) FROM billing_ledgerentry l) FROM billing_wallet w WHERE w.workspace_id = %s",
            ["l (workspace_id)"],
        ),
    ],
)
def test_the_checker_finds_a_statement_that_does_not_name_the_workspace(sql, unbound):
    assert sorted(unbound_references(sql, SCOPED)) == unbound
