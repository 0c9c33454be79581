"""The engine's raw SQL, in one place: tables and columns from the models, and prepared execution.

The credit engine says a few things in hand-written SQL because the ORM cannot say them in one
round trip (the charging statements, the reset and alert batches). Those statements name tables
and insert columns only through this module, from the models' ``_meta``: a renamed table, column
or field, or a new column the database needs a value for, fails when the module is imported,
not on the first charge in production.

It also holds what the ORM lacks for the engine's tables and nothing else: ``JSONKeyRemoved``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection
from django.db.models import NOT_PROVIDED, F, Func, JSONField, Model, TextField, Value
from django.db.models.functions import Cast


def table(model: type[Model]) -> str:
    """The model's table."""
    return model._meta.db_table


def columns(model: type[Model]) -> list[str]:
    """Every column of the model's table, in the order its rows come back from ``RETURNING *``."""
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


@contextmanager
def raw_cursor() -> Iterator[psycopg.Cursor]:
    """A plain psycopg cursor on Django's connection (and in its transaction, if one is open).

    It binds parameters server-side (large arrays travel as parameters, and in binary with
    ``%(name)b``) and lets the server keep a statement's plan; what runs on it is not in
    Django's query log.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def execute_prepared(sql: str, params: Mapping[str, Any] | Sequence[Any], *, rows: bool = True) -> list[tuple]:
    """Run one statement as a server-side prepared statement; its rows, or [] with ``rows=False``.

    Django's own cursor binds client-side and would re-plan the statement on every call. For
    the statements every charge or API call runs.
    """
    with raw_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        # fetchall() without asking for cursor.description: building column objects for a ledger
        # entry's twenty-odd columns costs more client CPU than the rest of a charge.
        return cursor.fetchall() if rows else []


class JSONKeyRemoved(Func):
    """PostgreSQL's ``jsonb - text`` for an UPDATE: the field's object without one key."""

    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = JSONField()

    def __init__(self, field: str, key: str) -> None:
        super().__init__(F(field), Cast(Value(key), TextField()))
