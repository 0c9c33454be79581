"""charge() through PgBouncer against charge() straight to PostgreSQL: which pooling the stack's app runs behind.

Debian's PgBouncer is 1.18, which cannot keep protocol-level prepared statements across a
transaction pool (1.21 can). So the app has two ways to sit behind it:

* **transaction** pooling with prepared statements off (``DB_PREPARE_THRESHOLD=""``): the
  charging statement is parsed and planned on every call, but a server connection is held only
  for a transaction, so many app processes share a few;
* **session** pooling with them on (the default threshold): each app connection keeps a server
  connection of its own for as long as it lives, so nothing is shared, but the plan is kept.

Measured here, in a database of its own (``sigora_bench_pgbouncer`` on the configured server,
dropped and recreated each run), against a PgBouncer started for the run in front of that
server (one alias per mode, the stack's generated configuration): charges/s of
``billing.services.charge()`` from 1 and 4 writer processes on 50 workspaces picked at random,
straight to PostgreSQL (prepared statements on, as production runs without PgBouncer), through
PgBouncer per transaction (off), and per session (on); and straight to PostgreSQL with them off,
which tells planning's share from PgBouncer's hop. Each round measures the four back to back,
starting with a different one each round, each as a ratio of straight-to-PostgreSQL in that
round; the figure is the median over the rounds. The load average is printed before and after.

Env: BENCH_SECONDS (default 5 per measurement), BENCH_ROUNDS (default 3), BENCH_DB (default
sigora_bench_pgbouncer), BENCH_KEEP=1 keeps the database. Needs ``pgbouncer`` (``make
stack-tools``). Only 127.0.0.1 or a unix socket.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.charge import HISTORY, SECONDS, measure  # noqa: E402  (the same writers as bench/charge.py)
from bench.common import bench_database, books_verified, database_recreate, point_django_at, workspaces_funded  # noqa: E402
from bench.server import free_port  # noqa: E402
from stack.files import PGBOUNCER_USERLIST, pgbouncer_ini  # noqa: E402
from stack.supervisor import Service, Supervisor  # noqa: E402
from stack.topology import tool  # noqa: E402

# A successful charge logs nothing at INFO (production's level): this only quiets the setup's lines.
os.environ["LOG_LEVEL"] = "WARNING"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.dev")

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BENCH_DB = os.environ.get("BENCH_DB", "sigora_bench_pgbouncer")
WRITERS = (1, 4)
MANY = 50
EVENT = {"action": "claude-haiku", "quantity": 7}
TRANSACTION, SESSION = "bench_transaction", "bench_session"  # PgBouncer's aliases of the bench database
MODES = {  # name: (through PgBouncer as this alias, or straight; prepared statements kept after this many runs)
    "direct": (None, 5),
    "unprepared": (None, None),  # what planning every call costs, without PgBouncer's hop
    "transaction": (TRANSACTION, None),
    "session": (SESSION, 5),
}


def django_setup() -> dict[str, Any]:
    original = point_django_at(BENCH_DB)
    import django

    django.setup()
    return original


def prepare_database(original: dict[str, Any]) -> list[int]:
    from django.contrib.auth import get_user_model

    from billing.services import workspace_create

    database_recreate(original, BENCH_DB)
    owner = get_user_model().objects.create_user(username="bench", password=None)
    workspaces = [workspace_create(name=f"bench {i}", owner=owner).pk for i in range(MANY)]
    workspaces_funded(workspaces, EVENT, HISTORY)  # every debit from top-ups, as in bench/charge.py
    return workspaces


# --- PgBouncer, for the run --------------------------------------------------------------------------


def pgbouncer_user() -> str | None:
    """PgBouncer refuses to run as root: as root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    raise SystemExit("bench: running as root and no unprivileged user (postgres, nobody) to run PgBouncer as")


@contextmanager
def pgbouncer_serving(original: dict[str, Any]) -> Iterator[int]:
    """A PgBouncer on a free loopback port in front of the configured server, until the block ends."""
    import psycopg

    binary = tool("pgbouncer")
    if not binary:
        raise SystemExit("bench: pgbouncer is not installed: `make stack-tools` installs Debian's")
    # A unix socket directory (the embedded server) is a host to PgBouncer too; its port names the socket file.
    target = f"host={original['HOST']} port={original.get('PORT') or 5432} dbname={BENCH_DB}"
    target += f" user={original.get('USER') or 'postgres'}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pgbouncer-") as folder:
        here = Path(folder)
        here.chmod(0o755)  # PgBouncer's user reads its files here
        userlist = here / "userlist.txt"
        userlist.write_text(PGBOUNCER_USERLIST)
        ini = here / "pgbouncer.ini"
        databases = {TRANSACTION: target, SESSION: f"{target} pool_mode=session"}
        ini.write_text(pgbouncer_ini(port=port, databases=databases, userlist=userlist))

        def answers() -> bool:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user="postgres", dbname=TRANSACTION, connect_timeout=2
                ):
                    return True
            except psycopg.Error:
                return False

        supervisor = Supervisor(logs=here / "logs", say=lambda line: None)
        supervisor.start(
            Service("pgbouncer", [binary, str(ini)], user=pgbouncer_user(), ready=answers, ready_timeout=15)
        )
        try:
            yield port
        finally:
            supervisor.stop_all()


# --- The writers: a pool per mode, each process connected as that mode says -------------------------


def writer_init(mode: str, port: int, warm_workspace: int, ready: Any) -> None:
    """Each writer's Django, connected as ``mode`` says, warmed by one charge (its statement prepared, where kept)."""
    alias, threshold = MODES[mode]
    point_django_at(BENCH_DB)
    from django.conf import settings

    default = settings.DATABASES["default"]
    if alias:
        default.update(HOST="127.0.0.1", PORT=str(port), NAME=alias, USER="postgres", PASSWORD="")
    default["OPTIONS"]["prepare_threshold"] = threshold
    import django

    django.setup()
    from billing.services import charge

    charge(workspace=warm_workspace, **EVENT, idempotency_key=f"warm-{mode}-{os.getpid()}")
    ready.wait()


def run(original: dict[str, Any]) -> None:
    from django.db import connection, connections

    load_before = os.getloadavg()
    workspaces = prepare_database(original)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        (version,) = cursor.fetchone()
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (.pgdata, unix socket)"
    connections.close_all()
    figures: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    with pgbouncer_serving(original) as port:
        print(f"PostgreSQL {version}, {where}; PgBouncer 1.18 on 127.0.0.1:{port}; database {BENCH_DB}")
        print(f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
        spawn = multiprocessing.get_context("spawn")
        pools = {}
        try:
            for mode in MODES:
                ready = spawn.Barrier(max(WRITERS) + 1)
                pools[mode] = spawn.Pool(
                    max(WRITERS), initializer=writer_init, initargs=(mode, port, workspaces[0], ready)
                )
                ready.wait(timeout=300)
            for round_number in range(1, ROUNDS + 1):
                for writers in WRITERS:
                    # Each round starts with another mode, so none always runs first (or last) on a busy machine.
                    order = list(MODES)[round_number % len(MODES) :] + list(MODES)[: round_number % len(MODES)]
                    measured = {
                        mode: measure(pools[mode], "single", f"{mode}{writers}r{round_number}", workspaces, writers)
                        for mode in order
                    }
                    for mode, rate in measured.items():
                        figures.setdefault((mode, writers), []).append(rate)
                        ratios.setdefault((mode, writers), []).append(rate / measured["direct"])
                    shown = "  ".join(f"{mode} {measured[mode]:,.0f}/s" for mode in MODES)
                    print(f"  round {round_number}, {writers} writer(s): {shown}", flush=True)
        finally:
            for pool in pools.values():  # close() + join(), never terminate(): see bench/charge.py
                pool.close()
                pool.join()
    load_after = os.getloadavg()

    print(f"\ncharge() through PgBouncer vs straight to PostgreSQL, {SECONDS:g} s each, median of {ROUNDS} rounds")
    print(f"{'writers':>7} {'mode':<36} {'charges/s':>10} {'÷ direct':>9}")
    labels = {
        "direct": "straight to PostgreSQL, prepared",
        "unprepared": "straight to PostgreSQL, not prepared",
        "transaction": "PgBouncer transaction, not prepared",
        "session": "PgBouncer session, prepared",
    }
    for writers in WRITERS:
        for mode in MODES:
            rate = statistics.median(figures[(mode, writers)])
            ratio = statistics.median(ratios[(mode, writers)])
            print(f"{writers:>7} {labels[mode]:<36} {rate:>10,.0f} {ratio:>9.2f}")
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"verify_ledger: {books_verified()}")


def main() -> None:
    original = django_setup()
    with bench_database(original, BENCH_DB):
        run(original)


if __name__ == "__main__":
    main()
