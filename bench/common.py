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
                admin.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
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
