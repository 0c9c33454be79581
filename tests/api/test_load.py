"""The API under load from another process: production's server on loopback, many clients, one hot workspace.

The server is the one production runs (stack/servers.py, 2 workers × 4 threads) serving the test database; the clients
are threads of this process, each on its own keep-alive connection. They charge single events
and batches, retry keys (at once, and after dropping the connection before the answer came, as
a client that timed out would), and race each other on shared keys, until the credits run out.
Afterwards every key that was answered 200/201 is in the ledger exactly once, with the entry
every answer named; no refused key is; the balance is what was funded less the ledger's usage;
``verify_ledger`` finds the books balanced; and no request was answered with a 5xx.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter, defaultdict
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from api.credentials import service_token_create
from bench.server import SERVES, database_url
from billing.models import LedgerEntry, Wallet
from stack.servers import APP_SERVER
from tests.billing.test_charge_concurrency import in_threads
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.concurrency,
    pytest.mark.slow,
]

CLIENTS = 16
ROUNDS = 120  # requests per client, before its retries
BATCH = 10
SHARED = 40  # keys every client sends at about the same time
EVENT = {"action": "claude-haiku", "quantity": 7}  # 0.7 credits
COST = 700


class Client:
    """One keep-alive connection; a dropped one is opened again and the request retried (same key)."""

    def __init__(self, port: int, token: str, workspace_id: int) -> None:
        self.port = port
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Sigora-Workspace": str(workspace_id),
            "Content-Type": "application/json",
        }
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        data = json.dumps(body)
        for _ in range(5):
            try:
                self.conn.request("POST", f"/api/v1/{path}", data, self.headers)
                response = self.conn.getresponse()
                raw = response.read()
                try:
                    return response.status, json.loads(raw)
                except ValueError:  # not JSON (a server error page): the status is what is checked
                    return response.status, {}
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()  # the server closed an idle keep-alive connection: retry, same key
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        raise RuntimeError(f"POST {path} kept failing")

    def post_and_hang_up(self, path: str, body: dict) -> None:
        """Send a request and drop the connection before the answer: a client that timed out."""
        self.conn.request("POST", f"/api/v1/{path}", json.dumps(body), self.headers)
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)


def test_many_clients_on_one_hot_workspace_lose_nothing_and_charge_every_key_once():
    workspace = WorkspaceFactory()
    # Enough for about 85 % of the distinct events: the last requests are refused (402).
    events = CLIENTS * (ROUNDS - ROUNDS // 10) + CLIENTS * (ROUNDS // 10) * BATCH + SHARED
    funded = events * COST * 85 // 100
    fund(workspace, plan=0, topup=funded // 1000)
    funded = funded // 1000 * 1000
    _, token = service_token_create(name="load test", created_by=UserFactory(is_staff=True))
    env = {
        "DATABASE_URL": database_url(connection.settings_dict),
        "API_RATE_LIMIT": "0",  # the guard is not what is measured here
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "60",
    }

    accepted: dict[str, set[int]] = defaultdict(set)  # key: entry ids answered for it
    refused: set[str] = set()
    statuses: Counter = Counter()
    lock = threading.Lock()

    def record(status: int, keys_to_ids: dict[str, int | None]) -> None:
        with lock:
            statuses[status] += 1
            for key, entry_id in keys_to_ids.items():
                if status in (200, 201):
                    accepted[key].add(entry_id)
                elif status == 402:
                    refused.add(key)

    def charge(client: Client, key: str) -> None:
        status, body = client.post("charges", {**EVENT, "idempotency_key": key})
        record(status, {key: body["entry"]["id"] if status in (200, 201) else None})

    with SERVES[APP_SERVER](env=env, workers=2, threads=4, settings_module="sigora.settings.test") as server:

        def work(index: int, barrier: threading.Barrier) -> None:
            client = Client(server.port, token, workspace.pk)
            barrier.wait()
            for n in range(ROUNDS):
                key = f"c{index}-{n}"
                if n % 10 == 9:  # a batch, sent twice (the second answer is every event's replay)
                    batch = [{**EVENT, "idempotency_key": f"{key}-{i}"} for i in range(BATCH)]
                    for _ in range(2):
                        status, body = client.post("charges/batch", {"events": batch})
                        ids = {e["idempotency_key"]: e["id"] for e in body["entries"]} if status < 300 else {}
                        record(status, ids or {e["idempotency_key"]: None for e in batch})
                    continue
                if n % 7 == 3:  # the answer is lost: the client retries the key on a new connection
                    client.post_and_hang_up("charges", {**EVENT, "idempotency_key": key})
                charge(client, key)
                if n % 4 == 0:  # an immediate retry of the same key
                    charge(client, key)
                if n % 3 == 0 and n // 3 < SHARED:  # every client sends this shared key too
                    charge(client, f"shared-{n // 3}")
            client.conn.close()

        in_threads(CLIENTS, work)

    assert set(statuses) <= {200, 201, 402}, statuses  # no 5xx, nothing unexpected
    assert statuses[402] > 0 and statuses[201] > 0, statuses  # the credits did run out under load
    for key, ids in accepted.items():
        assert len(ids) == 1, f"{key} was answered with different entries: {ids}"
    usage = dict(LedgerEntry.objects.filter(workspace=workspace, kind="usage").values_list("idempotency_key", "id"))
    # Every accepted key exactly once (the unique index allows no more), with the entry it was told.
    assert usage == {key: next(iter(ids)) for key, ids in accepted.items()}
    assert not refused & usage.keys()
    wallet = Wallet.objects.get(workspace=workspace)
    assert wallet.total == funded - COST * len(usage)
    assert wallet.total < COST  # charged until what was left could not pay for one more
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert "all balanced" in out.getvalue()
