"""The project's raw SQL, in one place: tables and columns from the models, and prepared execution.

The credit engine says a few things in hand-written SQL because the ORM cannot say them in one
round trip (the charging statements, the reset and alert batches), and a few reads are measured
hot paths written in SQL too (the transactions page's keyset over the ledger, the usage summary,
the ledger audit). Those statements name tables and columns only through this module, from the
models' ``_meta``: a renamed table, column or field, or a new column the database needs a value
for, fails when the module is imported, not on the first charge in production.

It also holds what the ORM lacks and nothing else: ``JSONKeyRemoved``; ``Read`` /
``reads_run``, which send a page's several reads in one round trip; ``replica_or_primary``,
where a read that may lag goes; ``timeouts_set``, PostgreSQL's bounds on every new connection; and
``DATABASE_ERRORS``, what a database that is down, restarting or timing out raises.
"""

from __future__ import annotations

import re
import select
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import NOT_PROVIDED, F, Func, JSONField, Model, TextField, Value
from django.db.models.functions import Cast


def table(model: type[Model]) -> str:
    """The model's table."""
    return model._meta.db_table


def columns(model: type[Model], *fields: str) -> list[str]:
    """The columns of the named fields, in that order; with none named, every column of the
    model's table, in the order its rows come back from ``RETURNING *``."""
    if fields:
        return [model._meta.get_field(name).column for name in fields]
    return [field.column for field in model._meta.concrete_fields]


def insert(model: type[Model], values: Mapping[str, str], *, alias: str = "") -> str:
    """``INSERT INTO <table> [AS alias] (<columns>) SELECT <expressions>``, the rest (FROM …) to follow.

    ``values`` maps each column to the SQL expression that fills it; the columns are written in
    the table's order. Refused at once: a column the table does not have, and a column left out
    that the database cannot fill on its own (not null and no database default).
    """
    known = columns(model)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{model.__name__} has no column {', '.join(unknown)}")
    missing = [
        field.column
        for field in model._meta.concrete_fields
        if field.column not in values and not field.primary_key and not field.null and field.db_default is NOT_PROVIDED
    ]
    if missing:
        raise ValueError(f"an INSERT into {model.__name__} must fill {', '.join(missing)}")
    named = [column for column in known if column in values]
    target = f"{table(model)} AS {alias}" if alias else table(model)
    return f"INSERT INTO {target} ({', '.join(named)}) SELECT {', '.join(values[column] for column in named)}"


def compact(sql: str) -> str:
    """Drop comments, runs of whitespace and the spaces around commas and parentheses.

    psycopg caches the parsing of queries up to 4 KiB (``MAX_CACHED_STATEMENT_LENGTH``); past
    it, every run pays for parsing the statement again. (Only for statements that quote no text
    with a comma or parenthesis in it, so no literal changes.)
    """
    sql = re.sub(r"\s+", " ", re.sub(r"--[^\n]*", "", sql))
    return re.sub(r" ?([,()]) ?", r"\1", sql).strip()


def _spoke_while_idle(raw: psycopg.Connection) -> bool:
    """Whether anything arrived on the connection since its last answer was read: one poll, no round trip.

    Between requests a live connection has nothing to read. A backend that was terminated sent its
    FATAL message and closed the socket; a restarted PostgreSQL or PgBouncer closed it: either makes
    the socket readable.
    """
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _reconnect_if_dropped(database: BaseDatabaseWrapper) -> None:
    """Django's connection health check, for the statements that go round Django's cursor.

    With persistent connections and ``CONN_HEALTH_CHECKS`` Django checks a connection kept from an
    earlier request at the request's first Django cursor or transaction (a ``SELECT 1``), and opens a
    new one if it is dead. A psycopg cursor on ``connection.connection`` skips that: the API answers
    from such cursors alone, so after PostgreSQL or PgBouncer restarted between two requests, the
    next charge met the dead connection and failed (500); and since Django never saw the error, the
    broken connection was kept and every later API request on it failed too, until
    ``CONN_MAX_AGE`` retired it. So the check runs here too, where the request's first statement
    may be. A ``SELECT 1`` on every API call would cost a round trip per charge; a poll of the socket
    costs none, and the round trip is paid only when it says something came (tests/api/test_reconnect.py).
    Inside a transaction nothing is replaced: its statements must fail, not move to a new connection.
    """
    raw = database.connection
    if raw is None or database.in_atomic_block:
        return
    if raw.closed:  # a statement already met the dead connection (during an earlier request)
        database.close()
    elif database.health_check_enabled and not database.health_check_done and _spoke_while_idle(raw):
        database.close_if_health_check_failed()


@contextmanager
def raw_cursor() -> Iterator[psycopg.Cursor]:
    """A plain psycopg cursor on Django's connection (and in its transaction, if one is open).

    It binds parameters server-side (large arrays travel as parameters, and in binary with
    ``%(name)b``) and lets the server keep a statement's plan; what runs on it is not in
    Django's query log. A connection that PostgreSQL or PgBouncer dropped since the last
    request is replaced first (``_reconnect_if_dropped``).
    """
    database = connections[DEFAULT_DB_ALIAS]
    _reconnect_if_dropped(database)
    database.ensure_connection()
    with psycopg.Cursor(database.connection) as cursor:
        yield cursor


def execute_prepared(sql: str, params: Mapping[str, Any] | Sequence[Any], *, rows: bool = True) -> list[tuple]:
    """Run one statement as a server-side prepared statement; its rows, or [] with ``rows=False``.

    Django's own cursor binds client-side and would re-plan the statement on every call. For
    the statements every charge or API call runs, so what it costs in Python counts: it looks
    the thread's connection up once (each attribute read through ``django.db.connection`` is a
    lookup in a context-local store) and runs on one psycopg cursor kept per connection, rather
    than a new cursor with its own copy of the adapters each time (together about a fifth of a
    charge's client CPU, docs/performance.md, issue 17).
    """
    database = connections[DEFAULT_DB_ALIAS]
    _reconnect_if_dropped(database)
    database.ensure_connection()
    cursor = _kept_cursor(database)
    cursor.execute(sql, params, prepare=True)
    # fetchall() without asking for cursor.description: building column objects for a ledger
    # entry's twenty-odd columns costs more client CPU than the rest of a charge.
    return cursor.fetchall() if rows else []


def execute_prepared_after_lock(
    lock_sql: str, lock_params: Mapping[str, Any], sql: str, params: Mapping[str, Any]
) -> list[tuple]:
    """Run ``lock_sql`` (which takes a row lock) and then ``sql``, both prepared, as ONE transaction in
    ONE round trip; the rows of ``sql``. Only outside a transaction (autocommit).

    The two go out in psycopg's pipeline mode with a single Sync after them: PostgreSQL runs every
    statement before a Sync in one implicit transaction and commits it at the Sync (rolls it back if
    a statement fails), so nothing waits for the client in between. What the second statement gains:
    under READ COMMITTED each statement takes its snapshot when it starts, so ``sql`` starts after
    the lock is granted and sees the newest committed row. A single statement that waits for a row
    lock instead sees that row through EvalPlanQual, which re-initialises every part of the statement's
    plan, while the lock is held — for the charging statement twice per charge (its ``FOR UPDATE``
    and its ``UPDATE``), the largest share of its server time with many writers on one wallet
    (docs/performance.md, issue 17).
    """
    database = connections[DEFAULT_DB_ALIAS]
    if database.in_atomic_block:
        raise RuntimeError("execute_prepared_after_lock runs its own transaction: not inside atomic()")
    _reconnect_if_dropped(database)
    database.ensure_connection()
    raw = database.connection
    lock, cursor = _kept_cursor(database, "lock"), _kept_cursor(database)
    with raw.pipeline():
        lock.execute(lock_sql, lock_params, prepare=True)
        cursor.execute(sql, params, prepare=True)
    return cursor.fetchall()


def _kept_cursor(database: BaseDatabaseWrapper, name: str = "") -> psycopg.Cursor:
    """A psycopg cursor kept on ``database`` under ``name``, made anew for a new connection.

    Safe to share because its callers read every row before they return, and a Django connection
    belongs to one thread. A reconnect makes a new psycopg connection, which the identity check catches.
    """
    raw = database.connection
    kept = database.__dict__.setdefault("_billing_kept_cursors", {})
    cursor = kept.get(name)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = kept[name] = psycopg.Cursor(raw)
    return cursor


# A database that cannot answer now: down or restarting (PostgreSQL, or PgBouncer in front of it), a lost
# connection, a statement or lock wait past its timeout. Django's errors from the ORM, psycopg's own from the
# charging path's raw cursor. The API answers them 503 JSON (api/http.py), the pages a 503 page
# (billing/views/unavailable.py), the Stripe webhook 503 so Stripe retries.
DATABASE_ERRORS = (DjangoOperationalError, DjangoInterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def timeouts_set(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """On a new connection (``connection_created``): ``settings.DATABASE_TIMEOUTS``, for the session.

    One round trip per connection, which is kept for many requests. As session settings they hold
    straight to PostgreSQL and through a PgBouncer session pool (which resets them when the client
    leaves); a transaction pool would apply them to whichever server connection answered, so there set
    them on the role as well (docs/operations.md).
    """
    timeouts = settings.DATABASE_TIMEOUTS
    if connection.vendor != "postgresql" or not any(timeouts.values()):
        return
    names = list(timeouts)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join("set_config(%s, %s, false)" for _ in names),
            [part for name in names for part in (name, f"{timeouts[name]}ms")],
        )


def replica_or_primary() -> str:
    """The database alias for a read that may lag a moment behind the last write: the replica, when
    one is configured (``DATABASE_REPLICA_URL``); else the primary.

    Only for the reads named in the settings (the staff ledger list and its CSV, the customer's CSV
    export, the admin's big tables), never for charging, balances or a page showing what its
    reader just changed. Inside a transaction a read stays on the primary: it is part of what the
    transaction sees.
    """
    alias = settings.REPLICA_DATABASE
    if not alias or connection.in_atomic_block:
        return DEFAULT_DB_ALIAS
    return alias


class JSONKeyRemoved(Func):
    """PostgreSQL's ``jsonb - text`` for an UPDATE: the field's object without one key."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = JSONField()

    def __init__(self, field: str, key: str) -> None:
        super().__init__(F(field), Cast(Value(key), TextField()))


T = TypeVar("T")


@dataclass(frozen=True)
class Read(Generic[T]):
    """A selector's query and what makes its answer of the rows: run alone, or with others in one round trip.

    A page that shows several regions reads them all before rendering; each query is small, so
    the round trip between the app and PostgreSQL is a good share of its cost. The billing page
    sends its usage read, its first ledger page and its billing history together
    (``reads_run``), which keeps it at three queries with the session and the signed-in user's.
    ``sql`` and ``params`` are what a Django cursor takes (a queryset's ``query.sql_with_params()``
    fits); ``using`` is the database alias it runs on (the primary unless named).
    """

    sql: str
    params: Sequence[object] | Mapping[str, object]
    parse: Callable[[list[tuple]], T]
    using: str = DEFAULT_DB_ALIAS

    def run(self) -> T:
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return self.parse(cursor.fetchall())


def reads_run(*reads: Read) -> list:
    """The answers of several reads, in order, from one round trip.

    The statements are bound here, client-side, as Django binds every query, and sent as one
    string: PostgreSQL runs them one after the other and sends each one's rows back, which the
    cursor hands over one result set at a time. (Django's cursor has no way to send several
    queries at once; psycopg's pipeline mode would need a cursor outside Django's query log.)
    """
    if len(reads) == 1:
        return [reads[0].run()]
    aliases = {read.using for read in reads}
    if len(aliases) > 1:
        raise ValueError(f"reads sent together must share one database, not {sorted(aliases)}")
    database = connections[aliases.pop()]
    sql = ";\n".join(database.ops.compose_sql(read.sql, read.params) for read in reads)
    answers = []
    with database.cursor() as cursor:
        cursor.execute(sql)
        for n, read in enumerate(reads):
            if n and not cursor.nextset():
                raise RuntimeError(f"{len(reads)} queries were sent and {n} answered")
            answers.append(read.parse(cursor.fetchall()))
    return answers
