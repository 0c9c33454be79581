"""A reset pass over many due workspaces against the same writes done as raw set-based SQL.

In a database of its own (``sigora_resets_bench``, dropped after the run), for each size N
(default 10,000 then 100,000): 3×N Free workspaces whose period ended yesterday, each with its
wallet and the grant that opened its period, all made with set-based SQL (setup, not timed).

* **floor**: the first N reset by three raw statements over the whole set at once — insert
  an expiry entry per workspace, insert a grant per workspace, update every wallet (the next
  period computed by ``+ interval '1 month'``) — in one transaction: the least the database
  must do for these writes;
* **service**: ``periods_reset()`` over a second N (1,000 per transaction, its real batch),
  the way the beat job runs it: rows locked ``SKIP LOCKED``, the next period computed on each
  workspace's own clock, exactly-once keys checked.

Printed: seconds and workspaces/s for each, the ratio service / floor (target ≤ 3×), and the
service's peak Python memory (``tracemalloc``, in a separate pass over a third N, since tracing
slows Python down) at each size: it must stay flat as N grows
(target: the largest size within 1.5× the smallest). ``verify_ledger`` must then find every
book balanced, or the run exits 1.

Env: BENCH_SIZES (default "10000,100000"), BENCH_DB, BENCH_KEEP=1. Local servers only.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402  (needs ROOT on the path)
    bench_database,
    database_recreate,
    point_django_at,
    production_logging,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.test")

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "10000,100000").split(","))
BENCH_DB = os.environ.get("BENCH_DB", "sigora_resets_bench")
FLOOR_TARGET = 3.0
MEMORY_TARGET = 1.5

SETUP_SQL = """
WITH owner AS (
    INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
                           date_joined)
    VALUES ('!', false, %(owner)s, '', '', %(owner)s, false, true, now()) RETURNING id
), made AS (
    INSERT INTO billing_workspace (name, time_zone, plan_id, seats, created_at, byok_key_encrypted, byok_key_hint)
    SELECT 'Bench ' || n, 'UTC', (SELECT id FROM billing_plan WHERE key = 'free'), 1,
           now() - interval '1 month 1 day', '', ''
    FROM generate_series(1, %(count)s) AS n
    RETURNING id, created_at
), members AS (
    INSERT INTO billing_membership (workspace_id, user_id, role, created_at)
    SELECT made.id, owner.id, 'owner', now() FROM made, owner
), wallets AS (
    INSERT INTO billing_wallet (workspace_id, plan_balance, topup_balance, period_start, period_end, period_allowance,
                                period_anchor, revision, day_spend, period_spend, payments_processing, updated_at)
    SELECT id, 10000000, 0, created_at, created_at + interval '1 month', 10000000, created_at, 1, '{}', 0, 0, created_at
    FROM made
)
INSERT INTO billing_ledgerentry (workspace_id, kind, plan_delta, topup_delta, plan_balance_after, topup_balance_after,
                                 byok, lead, idempotency_key, reason, external_ref, metadata, created_at)
SELECT id, 'plan_grant', 10000000, 0, 10000000, 0, false, '', 'plan-grant:' || created_at::text, 'Free plan', '',
       '{}', created_at
FROM made
"""

FLOOR_SQL = [
    """
    INSERT INTO billing_ledgerentry (workspace_id, kind, plan_delta, topup_delta, plan_balance_after,
        topup_balance_after, byok, lead, idempotency_key, reason, external_ref, metadata, created_at)
    SELECT w.workspace_id, 'plan_expiry', -w.plan_balance, 0, 0, w.topup_balance, false, '',
           'plan-expiry:' || w.period_start::text, 'expired', '', '{}', now()
    FROM billing_wallet w WHERE w.workspace_id = ANY(%(ids)s) AND w.period_end <= now() AND w.plan_balance > 0
    ORDER BY w.workspace_id
    """,
    """
    INSERT INTO billing_ledgerentry (workspace_id, kind, plan_delta, topup_delta, plan_balance_after,
        topup_balance_after, byok, lead, idempotency_key, reason, external_ref, metadata, created_at)
    SELECT w.workspace_id, 'plan_grant', 10000000, 0, 10000000, w.topup_balance, false, '',
           'plan-grant:' || w.period_end::text, 'granted', '', '{}', now()
    FROM billing_wallet w WHERE w.workspace_id = ANY(%(ids)s) AND w.period_end <= now()
    ORDER BY w.workspace_id
    """,
    """
    UPDATE billing_wallet w SET plan_balance = 10000000, period_start = w.period_end,
           period_end = w.period_end + interval '1 month', period_allowance = 10000000,
           revision = w.revision + 2, updated_at = now()
    WHERE w.workspace_id = ANY(%(ids)s) AND w.period_end <= now()
    """,
]


def setup() -> dict:
    from django.conf import settings

    original = point_django_at(BENCH_DB)
    settings.DEBUG = False
    production_logging()
    import django

    django.setup()
    database_recreate(original, BENCH_DB)
    return original


def make_workspaces(count: int, tag: str) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        before = _max_id(cursor)
        cursor.execute(SETUP_SQL, {"count": count, "owner": f"bench-{tag}@sigora.test"})
        cursor.execute("SELECT id FROM billing_workspace WHERE id > %s ORDER BY id", [before])
        ids = [row[0] for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return ids


def _max_id(cursor) -> int:
    cursor.execute("SELECT coalesce(max(id), 0) FROM billing_workspace")
    return cursor.fetchone()[0]


def floor(ids: list[int]) -> float:
    from django.db import connection, transaction

    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in FLOOR_SQL:
            cursor.execute(sql, {"ids": ids})
    return time.perf_counter() - began


def service(expected: int, *, traced: bool = False) -> tuple[float, int]:
    """Seconds for one pass, or (with ``traced``) its peak Python memory: tracing slows Python, so never both."""
    from billing.services.resets import periods_reset

    if traced:
        tracemalloc.start()
    began = time.perf_counter()
    summary = periods_reset()
    spent = time.perf_counter() - began
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if summary.workspaces != expected:
        raise SystemExit(f"bench: periods_reset reset {summary.workspaces:,} workspaces, expected {expected:,}")
    return spent, peak


def books_balanced() -> bool:
    from billing.selectors import ledger_audit

    problems = [problem for chunk in ledger_audit(chunk_size=20_000) for problem in chunk.problems]
    for problem in problems[:5]:
        print("  verify_ledger:", problem)
    return not problems


def main() -> int:
    original = setup()
    rows, peaks, misses = [], {}, 0
    with bench_database(original, BENCH_DB):
        for size in SIZES:
            floor_ids = make_workspaces(size, f"floor-{size}")
            make_workspaces(size, f"service-{size}")
            floor_s = floor(floor_ids)
            service_s, _ = service(size)
            make_workspaces(size, f"memory-{size}")
            _, peak = service(size, traced=True)
            peaks[size] = peak
            ratio = service_s / floor_s
            ok = ratio <= FLOOR_TARGET
            misses += not ok
            rows.append((size, floor_s, service_s, ratio, peak, ok))
            print(
                f"{size:>9,} due: floor {floor_s:6.2f} s ({size / floor_s:8,.0f}/s)  "
                f"service {service_s:6.2f} s ({size / service_s:8,.0f}/s)  "
                f"= {ratio:4.2f}× the floor (≤ {FLOOR_TARGET}× {'met' if ok else 'MISS'})  "
                f"peak Python memory {peak / 1e6:5.1f} MB"
            )
        growth = peaks[SIZES[-1]] / peaks[SIZES[0]]
        memory_ok = growth <= MEMORY_TARGET
        misses += not memory_ok
        print(
            f"memory: {peaks[SIZES[-1]] / 1e6:.1f} MB at {SIZES[-1]:,} vs {peaks[SIZES[0]] / 1e6:.1f} MB at "
            f"{SIZES[0]:,} = {growth:.2f}× (≤ {MEMORY_TARGET}× {'met' if memory_ok else 'MISS'})"
        )
        balanced = books_balanced()
        print(f"verify_ledger: {'all balanced' if balanced else 'UNBALANCED'}")
        print(f"timing/memory targets missed: {misses}")
    return 0 if balanced else 1


if __name__ == "__main__":
    raise SystemExit(main())
