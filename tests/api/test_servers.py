"""What the API needs from its application server, held for gunicorn and for granian alike.

Each test serves the product (``sigora.wsgi``) with bench/server.py's helper for one server, on
loopback, against the test database, and talks raw HTTP/1.1 to it: a keep-alive connection
serves one charge after another; every request is in the access log; a body over the limit is
refused from its Content-Length before it is sent (so the server hands the body over as a
stream, not after reading it whole); a chunked body (no Content-Length) is not read (411) and charges
nothing; SIGTERM lets a charge already running finish and answer; a worker killed with SIGKILL is
replaced and the server goes on charging. The commands are production's (stack/servers.py), so
these hold for the stack's nodes. docs/performance.md (issue 17) has the rest of the comparison.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable

import psycopg
import pytest
from django.db import connection

from api.credentials import service_token_create
from bench.server import SERVES, Server, database_url
from billing.models import LedgerEntry
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.concurrency,
    pytest.mark.slow,
]

# What each server logs once it acts on a signal: from then on its old workers are stopping.
SIGNALLED = {
    ("gunicorn", signal.SIGTERM): "Handling signal: term",
    ("granian", signal.SIGTERM): "Shutting down granian",
    ("gunicorn", signal.SIGHUP): "Handling signal: hup",
    ("granian", signal.SIGHUP): "Stopping old worker-1",
}
WAIT = 30.0  # seconds any one step may take on a busy machine before the test fails


@pytest.fixture
def caller():
    """A funded workspace and a service token for it: (workspace, the request head every call sends)."""
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=1_000)
    _, token = service_token_create(name="servers", created_by=UserFactory(is_staff=True))
    head = (
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nSigora-Workspace: {workspace.pk}\r\n"
        "Content-Type: application/json\r\n"
    )
    return workspace, head


def serving(server: str, **options) -> Callable:
    env = {"DATABASE_URL": database_url(connection.settings_dict), "API_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING"}
    return SERVES[server](env=env, workers=2, threads=2, settings_module="sigora.settings.test", **options)


def charge_body(key: str) -> bytes:
    return json.dumps({"action": "claude-haiku", "quantity": 7, "idempotency_key": key}).encode()


def answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Read one answer (by its Content-Length): its status, its JSON body and its head."""
    sock.settimeout(WAIT)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in fields.items() if name.strip().lower() == b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head[9:12]), json.loads(body), head


def post(sock: socket.socket, head: str, body: bytes) -> tuple[int, dict, bytes]:
    sock.sendall(f"POST /api/v1/charges HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return answer(sock)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for another process to get somewhere (polled, bounded by WAIT)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT:g} s for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("server", SERVES)
def test_keep_alive_access_log_and_the_size_limit_from_content_length(server, caller):
    workspace, head = caller
    with serving(server, access_log=True) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            first, second = (post(sock, head, charge_body(f"{server}-{n}")) for n in (1, 2))
        assert (first[0], second[0]) == (201, 201)  # both on one connection: kept alive

        # The API refuses from Content-Length alone: the body (100 MB announced, one byte sent) never comes.
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(f"POST /api/v1/charges HTTP/1.1\r\n{head}Content-Length: 100000000\r\n\r\n{{".encode())
            status, body, _ = answer(sock)
        assert (status, body["code"]) == (413, "payload_too_large")

        # Chunked: no Content-Length, so the API reads no body, says why, and charges nothing.
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            body = charge_body(f"{server}-chunked")
            sock.sendall(
                f"POST /api/v1/charges HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
            status, refusal, _ = answer(sock)
        assert (status, refusal["code"]) == (411, "length_required")
    # The server has stopped and its output is read to the end.
    keys = set(LedgerEntry.objects.filter(workspace=workspace, kind="usage").values_list("idempotency_key", flat=True))
    assert keys == {f"{server}-1", f"{server}-2"}
    logged = [line for line in srv.log if "POST /api/v1/charges HTTP/1.1" in line]
    # Every request once; in any order, as each thread writes its line when its request is done.
    codes = sorted(next(code for code in ("201", "411", "413") if f'1" {code} ' in line) for line in logged)
    assert codes == ["201", "201", "411", "413"], list(srv.log)


@pytest.mark.parametrize("server", SERVES)
@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGHUP], ids=["stop", "restart"])
def test_a_charge_in_flight_finishes_through_a_graceful_stop_or_restart(server, sent, caller):
    """A charge waiting on its wallet's lock when SIGTERM (stop) or SIGHUP (new workers for the old) arrives is
    still answered, and written once; after a restart the server goes on charging."""
    workspace, head = caller
    dsn = database_url(connection.settings_dict)
    with serving(server) as srv, psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as watcher:
        holder.execute("SELECT 1 FROM billing_wallet WHERE workspace_id = %s FOR UPDATE", (workspace.pk,))
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            body = charge_body(f"{server}-in-flight")
            sock.sendall(f"POST /api/v1/charges HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            until(lambda: _waiting_on_a_lock(watcher, holder), "the charge to wait on the wallet's lock")
            os.kill(srv.pid, sent)
            until(lambda: _logged(srv, SIGNALLED[server, sent]), f"{server} to act on {sent.name}")
            holder.rollback()  # the charge goes on, inside a worker that is stopping
            status, entry, _ = answer(sock)
        if sent == signal.SIGHUP:
            with socket.create_connection(("127.0.0.1", srv.port)) as sock:
                assert post(sock, head, charge_body(f"{server}-restarted"))[0] == 201
    assert status == 201
    written = LedgerEntry.objects.get(workspace=workspace, idempotency_key=f"{server}-in-flight")
    assert entry["entry"]["id"] == written.pk


def _waiting_on_a_lock(watcher: psycopg.Connection, holder: psycopg.Connection) -> bool:
    blocked = watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (holder.info.backend_pid,)
    )
    return blocked.fetchone()[0] > 0


def _logged(srv: Server, text: str) -> bool:
    return any(text in line for line in list(srv.log))


@pytest.mark.parametrize("server", SERVES)
def test_killed_workers_are_replaced_and_charge(server, caller):
    """Every worker killed with SIGKILL (what the kernel's OOM killer does): new ones start and charge."""
    workspace, head = caller
    with serving(server) as srv:
        until(lambda: len(_workers(srv.pid)) == 2, f"{server}'s two workers")
        killed = _workers(srv.pid)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        until(lambda: len(_workers(srv.pid) - killed) == 2, f"{server} to start two new workers")
        statuses = []

        def charged() -> bool:  # a new connection each try: until a new worker listens, it may be refused
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
                    statuses.append(post(sock, head, charge_body(f"{server}-after-{len(statuses)}"))[0])
            except (ConnectionError, OSError):
                return False
            return statuses[-1] == 201

        until(charged, f"{server}'s new workers to charge")
        assert _workers(srv.pid).isdisjoint(killed)
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == statuses.count(201) == 1


def _workers(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (the server's workers), from /proc."""
    children = set()
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:  # it exited meanwhile
                continue
            if int(fields[1]) == pid:
                children.add(int(stat))
    return children
