"""After PostgreSQL (or PgBouncer) drops the app's connection between two requests, the next request
succeeds on a new one, with no manual step: on the API's raw-cursor path and on the pages' ORM path.

The server-side backend of the connection a request left open is terminated from a second
connection (what a restart of PostgreSQL or PgBouncer does to every open connection), then the
next request goes through the WSGI application with its per-request connection cleanup, as
gunicorn runs it. The data is committed (``transaction=True``): a test transaction would die with
the backend.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection, connections

from billing.models import LedgerEntry, Wallet
from tests.api.test_wsgi import call
from tests.conftest import fund
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def persistent_connections():
    """Connections kept between requests and health-checked, as DATABASE_URL's settings make them (the
    embedded server's close them after every request: there would be nothing left open to kill)."""
    connection.close()
    kept = {name: connection.settings_dict[name] for name in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    connection.settings_dict.update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
    yield
    connection.settings_dict.update(kept)
    connection.close()


def connection_params() -> dict:
    """What psycopg needs to reach the test database, as Django's connection does."""
    params = connection.get_connection_params()
    return {name: value for name, value in params.items() if name not in {"cursor_factory", "prepare_threshold"}}


def terminate(other: psycopg.Connection, pid: int) -> None:
    # With a timeout, pg_terminate_backend returns once the process has gone (PostgreSQL 14+).
    assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)


def backend_terminated() -> int:
    """Terminate the server process behind Django's open connection from another connection; its pid."""
    assert connection.connection is not None, "the request left no connection open to kill"
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection_params(), autocommit=True) as killer:
        terminate(killer, pid)
    return pid


def waiting_on(locker: psycopg.Connection, watcher: psycopg.Connection) -> int:
    """The pid of the backend that queues for a lock ``locker`` holds, once one does (10 s at most).

    Asked on ``watcher``, outside any transaction: one keeps the first activity snapshot it read.
    """
    deadline = time.monotonic() + 10
    blocked = "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
    while time.monotonic() < deadline:
        if row := watcher.execute(blocked, [locker.info.backend_pid]).fetchone():
            return row[0]
        time.sleep(0.005)  # polling another process's state, not waiting for the clock
    raise AssertionError("nothing queued for the lock")


def charge_over_http(api_key: str, key: str) -> tuple[int, bytes]:
    """POST /api/v1/charges: the status and the body."""
    body = json.dumps({"action": "gmail-send", "idempotency_key": key}).encode()
    status, _, content = call(
        "/api/v1/charges",
        method="POST",
        body=body,
        headers={"Authorization": f"Bearer {api_key}"},
        per_request_cleanup=True,
    )
    return status, content


def test_the_api_charges_on_a_new_connection_after_its_backend_was_terminated(api_key, workspace):
    fund(workspace, topup=1_000)
    assert charge_over_http(api_key, "before")[0] == 201
    killed = backend_terminated()

    status, body = charge_over_http(api_key, "after")

    assert status == 201, body[:300]
    assert json.loads(body)["entry"]["idempotency_key"] == "after"
    assert connection.connection.info.backend_pid != killed
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="after").count() == 1


def test_a_request_after_one_whose_connection_died_midway_gets_a_new_connection(api_key, workspace):
    """PostgreSQL restarting while a statement runs: that request fails (a 5xx, which callers retry
    with the same key); the next one on the same worker thread charges."""
    fund(workspace, topup=1_000)
    worker = ThreadPoolExecutor(max_workers=1)  # a server's worker thread: one connection of its own
    with (
        psycopg.connect(**connection_params(), autocommit=True) as locker,
        psycopg.connect(**connection_params(), autocommit=True) as watcher,
        locker.transaction(),
    ):
        # The wallet row locked elsewhere: the charge waits on it, mid-statement, until killed.
        locker.execute(f"SELECT 1 FROM {Wallet._meta.db_table} WHERE workspace_id = %s FOR UPDATE", [workspace.pk])
        cut_off = worker.submit(charge_over_http, api_key, "cut-off")
        terminate(watcher, waiting_on(locker, watcher))
        status, body = cut_off.result(timeout=30)
        assert (status, json.loads(body)["code"]) == (503, "database_unavailable")

    status, body = worker.submit(charge_over_http, api_key, "next").result(timeout=30)

    worker.submit(connections.close_all).result()
    worker.shutdown()
    assert status == 201, body[:300]
    assert not LedgerEntry.objects.filter(workspace=workspace, idempotency_key="cut-off").exists()
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="next").count() == 1


def test_a_page_answers_on_a_new_connection_after_its_backend_was_terminated(client, user):
    WorkspaceFactory(owner=user)
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    page = "/settings/billing/"
    assert call(page, headers={"Cookie": cookie}, per_request_cleanup=True)[0] == 200
    killed = backend_terminated()

    status, _, content = call(page, headers={"Cookie": cookie}, per_request_cleanup=True)

    assert status == 200, content[:500]
    assert connection.connection.info.backend_pid != killed
