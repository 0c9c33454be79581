"""What every benchmark needs: a database of its own on the configured (local) server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def point_django_at(bench_db: str) -> dict[str, Any]:
    """Before any connection exists, aim Django's default database at ``bench_db``; return the original settings.

    Refuses anything but a local server: benchmarks only ever load this machine.
    """
    from django.conf import settings

    default = settings.DATABASES["default"]  # importing settings starts (or attaches to) the embedded server
    original = dict(default)
    host = str(default.get("HOST") or "")
    if not (host.startswith("/") or host in LOCAL_HOSTS):
        raise SystemExit(f"bench: refusing to run against {host!r}: only 127.0.0.1 or a unix socket")
    if original["NAME"] == bench_db:
        raise SystemExit(f"bench: the configured database is already {bench_db!r}; set BENCH_DB to another name")
    # Django's connection handler reads this dict lazily, on the first connection.
    default["NAME"] = bench_db
    return original


def production_logging() -> str:
    """Before ``django.setup()``: log as production does, billing at ``LOG_LEVEL`` (INFO unless set),
    whatever the settings module says. The test settings, which the page and reset benchmarks run on
    for the rest, quiet billing to WARNING for the test suite; a benchmark measures what production
    pays, log lines included. Returns the level."""
    from django.conf import settings

    settings.LOGGING["loggers"]["billing"]["level"] = settings.LOG_LEVEL
    return settings.LOG_LEVEL


def admin_connect(original: dict[str, Any]) -> Any:
    """A psycopg connection to the configured (not the bench) database, to create and drop the bench one."""
    import psycopg

    return psycopg.connect(
        host=original.get("HOST") or None,
        port=original.get("PORT") or None,
        user=original.get("USER") or None,
        password=original.get("PASSWORD") or None,
        dbname=original["NAME"],
        autocommit=True,
    )


def _drop(admin: Any, bench_db: str) -> None:
    admin.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')


def database_recreate(original: dict[str, Any], bench_db: str) -> None:
    """Drop and create the bench database on the configured server, then migrate it (Django points at it)."""
    from django.core.management import call_command

    with admin_connect(original) as admin:
        _drop(admin, bench_db)
        admin.execute(f'CREATE DATABASE "{bench_db}"')
    call_command("migrate", verbosity=0)


def workspaces_funded(workspace_ids: list[int], event: dict[str, Any], history: int) -> None:
    """Empty each workspace's plan bucket and fund its top-ups hugely, so every debit comes from top-ups;
    then ``history`` charges of ``event`` each and fresh statistics (what autovacuum does on a live
    server, and the machine's may be off), so prepared statements' generic plans are chosen for a
    ledger with rows in it, as in production, not for an empty table."""
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.services import charge_batch, entry_post, wallet_lock

    for workspace_id in workspace_ids:
        with transaction.atomic():
            wallet = wallet_lock(workspace_id=workspace_id)
            entry_post(
                wallet,
                kind="adjustment",
                plan_delta=-wallet.plan_balance,
                topup_delta=10**15,
                idempotency_key="bench-fund",
                reason="benchmark funding",
                now=timezone.now(),
            )
        charge_batch(workspace=workspace_id, events=[{**event, "idempotency_key": f"seed-{i}"} for i in range(history)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


@contextmanager
def bench_database(original: dict[str, Any], bench_db: str) -> Iterator[None]:
    """Around a run: close Django's connections after it and drop the bench database (unless BENCH_KEEP=1)."""
    from django.db import connections

    started = time.monotonic()
    try:
        yield
    finally:
        connections.close_all()
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"kept database {bench_db} (BENCH_KEEP=1)")
        else:
            with admin_connect(original) as admin:
                _drop(admin, bench_db)
        print(f"total {time.monotonic() - started:.0f} s")


def books_verified() -> str:
    """Run ``verify_ledger`` on the bench database: its summary, or exit naming what is wrong."""
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("verify_ledger", stdout=out, no_color=True)
    except CommandError as failed:
        raise SystemExit(f"verify_ledger FAILED: {out.getvalue().strip()}\n{failed}") from None
    return out.getvalue().strip()
