"""The admin's own queries, beyond a changelist's queryset: ledger search and export, a catalog row's history.

Each runs down an index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

from billing.models import CatalogChange, LedgerEntry, Workspace

SEARCH_LIMIT = 1_000

# An idempotency key is unique per workspace, and its only index is (workspace_id,
# idempotency_key): one probe per workspace finds it everywhere. OFFSET 0 keeps the planner
# from flattening the LATERAL subquery into a join it might answer with a scan of the ledger,
# so the cost grows with the number of workspaces, never with the ledger. A Stripe id is
# found through the partial index on external_ref.
_SEARCH_SQL = f"""
(SELECT found.id
 FROM {Workspace._meta.db_table} w
 CROSS JOIN LATERAL (
     SELECT e.id FROM {LedgerEntry._meta.db_table} e
     WHERE e.workspace_id = w.id AND e.idempotency_key = %(term)s
     OFFSET 0
 ) found
 LIMIT %(limit)s)
UNION ALL
(SELECT e.id FROM {LedgerEntry._meta.db_table} e
 WHERE e.external_ref = %(term)s AND e.external_ref <> ''
 LIMIT %(limit)s)
"""


def ledger_search_ids(*, term: str, workspace_id: int | None = None, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """Ids of the entries whose idempotency key or Stripe id (external_ref) is exactly ``term``, read on ``using``."""
    entries = LedgerEntry.objects.using(using)
    if workspace_id is not None:
        by_key = entries.filter(workspace_id=workspace_id, idempotency_key=term).values_list("id", flat=True)
        by_ref = entries.filter(external_ref=term).exclude(external_ref="").values_list("id", flat=True)
        return [*by_key, *by_ref[:SEARCH_LIMIT]]
    with connections[using].cursor() as cursor:
        cursor.execute(_SEARCH_SQL, {"term": term, "limit": SEARCH_LIMIT})
        return [row[0] for row in cursor.fetchall()]


def ledger_rows_newest_first(queryset: QuerySet, *, fields: Sequence[str], chunk: int = 2_000) -> Iterator[tuple]:
    """Every entry of a newest-first ledger queryset as ``fields`` tuples, read a keyset chunk at a time.

    Each chunk is its own short query (``id < last one seen``), so an export of millions of rows
    holds no cursor or transaction open between chunks (PgBouncer-safe) and keeps memory flat.
    """
    if fields[0] != "id":
        raise ValueError("the first field must be id: the chunks are keyed by it")
    rows = queryset.order_by("-id").values_list(*fields)
    before = None
    while True:
        batch = list((rows if before is None else rows.filter(id__lt=before))[:chunk])
        yield from batch
        if len(batch) < chunk:
            return
        before = batch[-1][0]


def catalog_history(*, subject: str, subject_id: int, limit: int = 50) -> list[CatalogChange]:
    """A plan's, pack's or action's recorded changes, newest first (its change page shows them)."""
    return list(
        CatalogChange.objects.filter(subject=subject, subject_id=subject_id)
        .select_related("changed_by")
        .order_by("-id")[:limit]
    )
