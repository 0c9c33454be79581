"""A charge that PostgreSQL gives up on (statement_timeout, lock_timeout) is a clean 503 with nothing written.

Real PostgreSQL: another connection holds the wallet's row lock, so the charging statement waits
on it until the database's own bound cancels it. The bounds are made tiny here (production's are
in sigora/settings/production.py) and set as the app sets them, on each new connection
(billing/db.py ``timeouts_set``). Then the lock is released and the caller's retry, with the same
idempotency key, charges once.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection, connections

from billing.models import LedgerEntry, Wallet
from tests.api.test_reconnect import connection_params
from tests.api.test_wsgi import call
from tests.conftest import fund

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BOUND_MS = 200  # the database's patience here: long enough to be sure the statement was waiting
WAIT = 30.0  # seconds the test waits for the answer on a busy machine


def charge(api_key: str, key: str) -> tuple[int, dict, dict]:
    body = json.dumps({"action": "gmail-send", "idempotency_key": key}).encode()
    headers = {"Authorization": f"Bearer {api_key}"}
    status, answer_headers, content = call(
        "/api/v1/charges", method="POST", body=body, headers=headers, per_request_cleanup=True
    )
    return status, answer_headers, json.loads(content)


@pytest.fixture
def bounded(settings):
    """Sets one of the database's bounds tiny on the connections opened from then on; closes them after."""

    def bound(name: str) -> None:
        settings.DATABASE_TIMEOUTS = dict.fromkeys(settings.DATABASE_TIMEOUTS, 0) | {name: BOUND_MS}
        connection.close()

    yield bound
    connection.close()  # before the settings are restored: the test database's flush gets no bound


@pytest.mark.parametrize("bound", ["statement_timeout", "lock_timeout"])
def test_a_charge_past_the_databases_bound_is_a_503_that_writes_nothing(bound, bounded, api_key, workspace):
    fund(workspace, topup=1_000)
    before = Wallet.objects.get(workspace=workspace)
    bounded(bound)
    with connection.cursor() as cursor:  # set by the app itself, as each connection opens
        cursor.execute(f"SHOW {bound}")
        assert cursor.fetchone()[0] == f"{BOUND_MS}ms"
    server = ThreadPoolExecutor(max_workers=1)  # a server's thread: a connection of its own
    with psycopg.connect(**connection_params(), autocommit=True) as locker, locker.transaction():
        locker.execute(f"SELECT 1 FROM {Wallet._meta.db_table} WHERE workspace_id = %s FOR UPDATE", [workspace.pk])
        # Without the bound the charge would wait for the lock: after WAIT the lock goes, and the test fails.
        status, headers, body = server.submit(charge, api_key, "held").result(timeout=WAIT)

    assert (status, body["code"], headers["Retry-After"]) == (503, "database_timeout", "1"), body
    assert headers["Content-Type"] == "application/json"
    assert "retry with the same idempotency key" in body["message"]
    assert not LedgerEntry.objects.filter(workspace=workspace, idempotency_key="held").exists()
    after = Wallet.objects.get(workspace=workspace)
    assert (after.plan_balance, after.topup_balance) == (before.plan_balance, before.topup_balance)

    # The lock released, the caller's retry charges, once.
    status, _, body = server.submit(charge, api_key, "held").result(timeout=WAIT)
    server.submit(connections.close_all).result()
    server.shutdown()
    assert status == 201, body
    assert LedgerEntry.objects.filter(workspace=workspace, idempotency_key="held").count() == 1
