"""The ledger as the customer reads it: the transactions page (keyset pages), the CSV export and the API.

Raw SQL (``billing.db``): the transactions page over a ledger of a million entries is a
measured hot path, and its first page travels with the page's other reads in one round trip
(``db.reads_run``). Rows are named tuples, the cheapest record for a CSV export's thousands.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.db import DEFAULT_DB_ALIAS

from billing import db
from billing.models import LedgerEntry
from billing.selectors.catalog import ToolName, specialist_label, specialist_names, tool_named, tool_names


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


_LEDGER_TABLE = db.table(LedgerEntry)
# The columns a row shows, from the model. The time is read as a UTC timestamp and made aware
# here: psycopg decodes that type in C, while the loader Django installs for timestamptz parses
# each value in Python (a CSV chunk has 2,000). These rows go to the customer (page, CSV, API):
# ``reason`` is their text; ``internal_note`` is staff's and is never read here.
_ID, _CREATED_AT, _KIND, _SPECIALIST, _ACTION, *_AMOUNTS_AND_TEXT, _METADATA = db.columns(
    LedgerEntry,
    "id",
    "created_at",
    "kind",
    "specialist",
    "action",
    "quantity",
    "plan_delta",
    "topup_delta",
    "plan_balance_after",
    "topup_balance_after",
    "byok",
    "list_amount",
    "lead",
    "reason",
    "idempotency_key",
    "external_ref",
    "metadata",
)
_LEDGER_COLUMNS = ", ".join(
    [
        _ID,
        f"{_CREATED_AT} AT TIME ZONE 'UTC'",
        _KIND,
        _SPECIALIST,
        _ACTION,
        *_AMOUNTS_AND_TEXT,
        f"coalesce({_METADATA}->>'receipt_url', '')",
    ]
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
    *,
    workspace_id: int,
    filters: LedgerFilters,
    zone: ZoneInfo,
    before: int | None = None,
    after: int | None = None,
    limit: int = 25,
    using: str = DEFAULT_DB_ALIAS,
) -> db.Read[LedgerPage]:
    """Newest first, ``limit`` at a time; the cursor is the last id shown (keyset, never OFFSET).

    Without dates the list runs down the ids. With a date range it runs down the times, so
    the (workspace, created_at, id) index starts inside the range instead of walking every
    newer entry to reach it; the cursor is still an id, whose time is looked up.

    ``after``: only the entries written since the one with that id, for a list already shown to
    take them on top. By id, whatever the order: a workspace's entries are written under its
    wallet's row lock, so their ids follow the order they were committed in, while their times
    are taken before the lock.

    ``using``: the database alias to read; the primary unless a read that may lag says otherwise.
    """
    where, params = _ledger_conditions(workspace_id, filters, zone)
    if after is not None:
        where.append("id > %s")
        params.append(after)
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
                specialist_label(specialist, specialists),
                tools.get(action),
                *rest,
                specialist or "",
            )
            for pk, at, kind, specialist, action, *rest in found
        ]
        return LedgerPage(entries=rows, next_cursor=rows[-1].pk if more and rows else None)

    return db.Read(sql, [*params, limit + 1], page, using)


def ledger_page(
    *,
    workspace_id: int,
    filters: LedgerFilters,
    zone: ZoneInfo,
    before: int | None = None,
    limit: int = 25,
    using: str = DEFAULT_DB_ALIAS,
) -> LedgerPage:
    """One page of the ledger (see ``ledger_read``)."""
    read = ledger_read(workspace_id=workspace_id, filters=filters, zone=zone, before=before, limit=limit, using=using)
    return read.run()


def ledger_export(
    *, workspace_id: int, filters: LedgerFilters, zone: ZoneInfo, chunk: int = 2_000
) -> Iterator[LedgerRow]:
    """Every matching entry, newest first, read a keyset chunk at a time (for streaming CSV).

    From the replica when there is one (``db.replica_or_primary``): an export of history may lag
    a moment, and its thousands of rows are load the primary need not carry.
    """
    using = db.replica_or_primary()
    before = None
    while True:
        page = ledger_page(
            workspace_id=workspace_id, filters=filters, zone=zone, before=before, limit=chunk, using=using
        )
        yield from page.entries
        if page.next_cursor is None:
            return
        before = page.next_cursor
