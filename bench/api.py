"""Charges over HTTP (gunicorn or granian on loopback) against the same charges in-process, in the same run.

What is measured, in a database of its own (``sigora_bench_api`` on the configured server,
dropped and recreated each run):

* charges/s and p50/p99 latency of ``POST /api/v1/charges`` from client processes, each on a
  keep-alive connection (a lean client: see LoopbackClient), with 1 and 4 clients, on ONE hot
  workspace and on 50 workspaces picked at random (a service token naming each in
  ``Sigora-Workspace``);
* the same work in-process: ``charge()`` from as many writer processes, back to back with the
  HTTP figure, so a noisy machine moves both together; HTTP / in-process is the share the HTTP
  layer (the server, Django's middleware, the credential check, JSON both ways) keeps;
* events/s of ``POST /api/v1/charges/batch`` with 1,000 events per call against
  ``charge_batch()`` of the same 1,000, from one client;
* the ceiling for single calls: the same ``charge()`` behind the same server with nothing else
  (``bench/bare_wsgi.py``: no Django request or routing, no middleware, no credential), with
  the same clients and workspaces as each single-call row, against in-process in the same
  rounds; within a round the API and its ceiling take turns (SLICES of a second each), so the
  machine's drift moves both;
* with ``BENCH_SERVER=both``, all of that for gunicorn and granian in the same rounds: each
  round measures in-process once, then each server's API and ceiling (the servers' order
  alternating from round to round), and a last table puts the two servers side by side;
* ``verify_ledger`` afterwards, and every accepted event in the ledger once.

The clients are Python on the same two cores as the server and PostgreSQL, so they take a share
of the machine the in-process writers do not need; the ratio includes it.

Env: BENCH_SECONDS (default 3 per measurement), BENCH_ROUNDS (pairs per figure, default 3),
BENCH_DB (default sigora_bench_api), BENCH_KEEP=1 keeps the database, BENCH_WORKERS / BENCH_THREADS
(worker processes × threads running the app; default a production node's, stack/servers.py NODE_WORKERS ×
NODE_THREADS: see docs/performance.md), BENCH_ACCESS_LOG=0 turns the servers' access log off (production
keeps it on), BENCH_SERVER (gunicorn, granian or both; default the one production runs, stack/servers.py
APP_SERVER).
Only 127.0.0.1 or a unix socket.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import os
import random
import socket
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import bench_database, books_verified, database_recreate, point_django_at, workspaces_funded  # noqa: E402  (needs ROOT on the path)
from bench.server import SERVES, database_url  # noqa: E402
from stack.servers import APP_SERVER, NODE_THREADS, NODE_WORKERS  # noqa: E402

# Production's settings, logging included (LOG_LEVEL from the environment, INFO by default), for the servers
# and the in-process writers alike, before django.setup(): secrets made for this run only, plain HTTP on
# loopback (as stack/config.py).
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "sigora.settings.production",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or base64.urlsafe_b64encode(os.urandom(40)).decode(),
        "BYOK_ENCRYPTION_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key: nothing is stored
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "BEHIND_TLS_PROXY": "0",
    }
)

SETTINGS = os.environ["DJANGO_SETTINGS_MODULE"]
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SLICES = 3  # turns the API and its ceiling take in each round (of BENCH_SECONDS ÷ SLICES each)
BENCH_DB = os.environ.get("BENCH_DB", "sigora_bench_api")
WORKERS = int(os.environ.get("BENCH_WORKERS", NODE_WORKERS))  # the shape a production node runs, unless told
THREADS = int(os.environ.get("BENCH_THREADS", NODE_THREADS))
ACCESS_LOG = os.environ.get("BENCH_ACCESS_LOG", "1") != "0"
SERVER = os.environ.get("BENCH_SERVER", APP_SERVER)  # what production runs, unless told
SERVERS = list(SERVES) if SERVER == "both" else [SERVER]
SHAPES = {
    "gunicorn": "gthread, --preload, keep-alive",
    "granian": "--interface wsgi, blocking threads, one Rust runtime thread each, keep-alive",
}
CLIENTS = (1, 4)
MANY = 50
HISTORY = 100
BATCH = 1_000
EVENT = {"action": "claude-haiku", "quantity": 7}  # 0.7 credits


def django_setup() -> dict[str, Any]:
    original = point_django_at(BENCH_DB)
    import django

    django.setup()
    return original


def prepare_database(original: dict[str, Any]) -> tuple[int, list[int], str]:
    """Recreate the bench database; open and fund the hot and the many workspaces; a service token."""
    from django.contrib.auth import get_user_model

    from api.credentials import service_token_create
    from billing.services import workspace_create

    database_recreate(original, BENCH_DB)
    owner = get_user_model().objects.create_user(username="bench", password=None, is_staff=True)
    workspaces = [workspace_create(name=f"bench {i}", owner=owner).pk for i in range(MANY + 1)]
    workspaces_funded(workspaces, EVENT, HISTORY)  # every debit from top-ups, as in bench/charge.py
    _, token = service_token_create(name="bench", created_by=owner)
    return workspaces[0], workspaces[1:], token


# --- Callers: separate processes, spawned once and reused by every measurement ------------------


class LoopbackClient:
    """A lean HTTP/1.1 client: one keep-alive socket, the fixed headers written once, answers read by
    their Content-Length.

    The load generator shares the two cores with the server and PostgreSQL, so it should cost as
    little as it can, as pgbench (C) does for bench/charge.py's ceiling: http.client parses every
    answer's headers with the email package, which costs a sizeable share of what is measured.
    """

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        self.pending = b""

    def post(self, path: str, workspace_id: int, body: bytes) -> tuple[int, bytes]:
        request = f"POST {path} HTTP/1.1\r\n{self.head}Sigora-Workspace: {workspace_id}\r\n"
        self.sock.sendall(f"{request}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while (end := self.pending.find(b"\r\n\r\n")) < 0:
            self._read()
        head, self.pending = self.pending[:end].lower(), self.pending[end + 4 :]
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:300]!r}")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        while len(self.pending) < length:
            self._read()
        answer, self.pending = self.pending[:length], self.pending[length:]
        return int(head[9:12]), answer

    def _read(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.pending += chunk

    def close(self) -> None:
        self.sock.close()


def caller_init(ready: Any) -> None:
    django_setup()
    ready.wait()


def caller_run(task: tuple[str, str, list[int], int, str, float, float]) -> tuple[int, int, list[float], float]:
    """Call from ``start`` (monotonic, shared by the processes) for ``seconds``.

    Returns (events charged, refusals or errors, each call's seconds, monotonic end).
    """
    mode, label, ws_ids, port, token, start, seconds = task
    prefix = f"{label}-{os.getpid()}"
    # Connected before the clock starts, as a pooled client would be.
    conn = LoopbackClient(port, token) if mode.startswith("http") else None
    from billing.services import BillingError, charge, charge_batch

    done = failed = calls = 0
    took: list[float] = []
    time.sleep(max(0.0, start - time.monotonic()))
    deadline = start + seconds
    while (began := time.monotonic()) < deadline:
        ws = ws_ids[0] if len(ws_ids) == 1 else random.choice(ws_ids)
        calls += 1
        key = f"{prefix}-{calls}"
        batch = [{**EVENT, "idempotency_key": f"{key}-{i}"} for i in range(BATCH)] if mode.endswith("batch") else None
        try:
            if conn is None:
                if batch is None:
                    charge(workspace=ws, **EVENT, idempotency_key=key)
                    done += 1
                else:
                    done += len(charge_batch(workspace=ws, events=batch))
            else:
                body = json.dumps({"events": batch} if batch else {**EVENT, "idempotency_key": key}).encode()
                path = (
                    "/api/v1/charges/batch" if batch else "/bare/charges" if mode == "http-bare" else "/api/v1/charges"
                )
                status, answer = conn.post(path, ws, body)
                if status == 201:
                    done += BATCH if batch else 1
                else:
                    failed += 1
                    if failed == 1:
                        print(f"  ! {label}: HTTP {status} {answer[:200]!r}", flush=True)
        except BillingError:
            failed += 1
        took.append(time.monotonic() - began)
    if conn is not None:
        conn.close()
    return done, failed, took, time.monotonic()


def measure(
    pool: Any, mode: str, label: str, ws_ids: list[int], clients: int, port: int, token: str, seconds: float = SECONDS
) -> dict:
    start = time.monotonic() + 0.5  # time for every idle caller to pick its task up
    results = pool.map(caller_run, [(mode, label, ws_ids, port, token, start, seconds)] * clients, chunksize=1)
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    if failed:
        print(f"  ! {label}: {failed} calls refused or failed", flush=True)
    elapsed = max(r[3] for r in results) - start
    return {"rate": done / elapsed, "took": [t for r in results for t in r[2]], "events": done, "seconds": elapsed}


def _merged(measured: list[dict]) -> dict:
    """Several measurements of the same thing as one: their events over their time together."""
    events, seconds = sum(m["events"] for m in measured), sum(m["seconds"] for m in measured)
    return {
        "rate": events / seconds,
        "took": [t for m in measured for t in m["took"]],
        "events": events,
        "seconds": seconds,
    }


def _pooled(measured: list[dict]) -> dict:
    """The median rate of several measurements, and latency percentiles over all their calls."""
    took = sorted(t for m in measured for t in m["took"])
    return {
        "rate": statistics.median(m["rate"] for m in measured),
        "p50": took[len(took) // 2] * 1000,
        "p99": took[min(len(took) - 1, len(took) * 99 // 100)] * 1000,
    }


# --- The run ------------------------------------------------------------------------------------


def run(original: dict[str, Any]) -> None:
    from django.db import connection, connections

    from billing.models import LedgerEntry

    unknown = set(SERVERS) - set(SERVES)
    if unknown:
        raise SystemExit(f"BENCH_SERVER={SERVER!r}: one of {', '.join(SERVES)} or both")
    hot, many, token = prepare_database(original)
    settings_dict = dict(connection.settings_dict)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        (version,) = cursor.fetchone()
    print(f"PostgreSQL {version}; database {BENCH_DB}; {os.cpu_count()} CPUs")
    level = logging.getLevelName(logging.getLogger("billing").getEffectiveLevel())
    print(f"settings {SETTINGS}, billing log level {level} everywhere (LOG_LEVEL; production's default is INFO)")
    for server in SERVERS:
        print(f"{server} {_version(server)}: {WORKERS} workers × {THREADS} threads ({SHAPES[server]})")
    print(f"access log {'on, as production' if ACCESS_LOG else 'off (BENCH_ACCESS_LOG=0)'}")
    print("clients keep-alive")
    connections.close_all()

    env = {
        "DATABASE_URL": database_url(settings_dict),
        "API_RATE_LIMIT": "0",  # one credential at thousands a second: the guard would answer 429
        "DB_CONN_MAX_AGE": "600",  # each worker thread keeps its connection and its prepared statements
    }
    rows = []  # (kind, server, workspace, callers, [(in-process, measured), ...]); kind "bare" is the ceiling
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(max(CLIENTS) + 1)
    pool = spawn.Pool(max(CLIENTS), initializer=caller_init, initargs=(ready,))
    try:
        ready.wait(timeout=300)
        with ExitStack() as stack:
            ports = {}  # server: (the app's port, the ceiling's port)
            for server in SERVERS:
                # The access log as production's nodes run it (on, stack/servers.py), for the app and ceiling alike.
                shape = {
                    "env": env,
                    "workers": WORKERS,
                    "threads": THREADS,
                    "settings_module": SETTINGS,
                    "access_log": ACCESS_LOG,
                }
                app = stack.enter_context(SERVES[server](**shape))
                # The ceiling: the same single charges behind the same server with no Django around them.
                bare = stack.enter_context(SERVES[server](**shape, app="bench.bare_wsgi:application"))
                ports[server] = (app.port, bare.port)
            # Warm-up: every caller's and every server thread's statements prepared before anything counts.
            warm = [measure(pool, "local", "warm-local", [hot], max(CLIENTS), 0, token, seconds=2)]
            for server, (port, bare_port) in ports.items():
                for mode, to in (("http", port), ("http-bare", bare_port)):
                    warm.append(measure(pool, mode, f"warm-{server}-{mode}", [hot], max(CLIENTS), to, token, seconds=2))
            plan = [("single", name, ids, n) for name, ids in (("hot", [hot]), ("many", many)) for n in CLIENTS]
            plan.append(("batch", "hot", [hot], 1))
            for kind, name, ids, n in plan:
                # In-process, then each server, back to back, ROUNDS times: another job on the machine moves
                # the whole round, and the median of the rounds' ratios is what one burst of it cannot move.
                measured = {(k, server): [] for server in SERVERS for k in (kind, "bare")}
                for round_ in range(ROUNDS):
                    label = f"{kind}-{name}-{n}-{round_}"
                    local = measure(pool, "local" if kind == "single" else "local-batch", f"l{label}", ids, n, 0, "")
                    line = f"  measured {label:<16} in-process {local['rate']:>8,.0f}/s"
                    # Each server first in every other round: neither always runs right after in-process.
                    for server in SERVERS if round_ % 2 == 0 else SERVERS[::-1]:
                        port, bare_port = ports[server]
                        if kind != "single":
                            remote = measure(pool, "http-batch", f"{server[:2]}{label}", ids, n, port, token)
                            measured[kind, server].append((local, remote))
                            line += f"   {server} HTTP {remote['rate']:>8,.0f}/s"
                            continue
                        # The API and its ceiling (the bare charge() behind the same server) in turns of a
                        # second, SLICES each: the machine's speed drifts within seconds here, and both
                        # halves of the ratio should see the same drift.
                        slices: dict[str, list[dict]] = {"http": [], "http-bare": []}
                        for turn in range(SLICES):
                            for each, to in (("http", port), ("http-bare", bare_port))[:: 1 if turn % 2 == 0 else -1]:
                                tag = f"{server[:2]}{'b' if each == 'http-bare' else ''}{label}.{turn}"
                                slices[each].append(measure(pool, each, tag, ids, n, to, token, SECONDS / SLICES))
                        remote, ceiling = _merged(slices["http"]), _merged(slices["http-bare"])
                        measured[kind, server].append((local, remote))
                        measured["bare", server].append((local, ceiling))
                        line += f"   {server} HTTP {remote['rate']:>8,.0f}/s bare {ceiling['rate']:>8,.0f}/s"
                    print(line, flush=True)
                rows += [(k, server, name, n, pairs) for (k, server), pairs in measured.items() if pairs]
    finally:
        pool.close()
        pool.join()

    report(rows)
    # Each measurement's events once: a ceiling's pairs share their in-process half with the row above.
    counted = {id(m): m for *_, pairs in rows for pair in pairs for m in pair}
    charged = sum(m["events"] for m in counted.values()) + sum(w["events"] for w in warm)
    usage = LedgerEntry.objects.filter(kind="usage").exclude(idempotency_key__startswith="seed-").count()
    print(f"usage entries written while measuring: {usage:,} (accepted: {charged:,})")
    if usage != charged:
        raise SystemExit("the ledger does not hold exactly the accepted charges")
    print(f"verify_ledger: {books_verified()}")


def _version(server: str) -> str:
    from importlib.metadata import version

    return version(server)


def _rates_ratio(pairs: list[tuple[dict, dict]], over: list[tuple[dict, dict]]) -> float:
    """The median, round by round, of the measured half of ``pairs`` over that of ``over``."""
    return statistics.median(p[1]["rate"] / o[1]["rate"] for p, o in zip(pairs, over, strict=True))


def report(rows: list[tuple[str, str, str, int, list[tuple[dict, dict]]]]) -> None:
    print(
        f"\nHTTP ({' and '.join(SERVERS)} on loopback) vs in-process: medians of {ROUNDS} rounds of {SECONDS:g} s"
        " each; events/s, latency per call in ms (all rounds)"
    )
    head = f"{'what':<8} {'server':<8} {'workspace':<9} {'callers':>7} {'in-proc/s':>10} {'p50':>6} {'p99':>6}"
    print(f"{head} {'HTTP/s':>9} {'p50':>6} {'p99':>6} {'ratio':>6} {'of bare':>7}")
    ceilings = {(server, name, n): pairs for kind, server, name, n, pairs in rows if kind == "bare"}
    for kind, server, name, n, pairs in rows:
        local, remote = (_pooled([pair[i] for pair in pairs]) for i in (0, 1))
        ratio = statistics.median(r["rate"] / loc["rate"] for loc, r in pairs)
        # The API's share of its ceiling, round by round: what Django, the credential and JSON keep.
        bare_rounds = ceilings.get((server, name, n)) if kind == "single" else None
        of_bare = f"{_rates_ratio(pairs, bare_rounds):>7.2f}" if bare_rounds else ""
        print(
            f"{kind:<8} {server:<8} {name:<9} {n:>7} {local['rate']:>10,.0f} {local['p50']:>6.2f} {local['p99']:>6.2f}"
            f" {remote['rate']:>9,.0f} {remote['p50']:>6.2f} {remote['p99']:>6.2f} {ratio:>6.2f} {of_bare}"
        )
    print(f"targets: single over HTTP ≥ 0.6 of in-process, ≥ 0.75 of its server's bare; batch ({BATCH:,}) ≥ 0.5")
    print(
        "bare: charge() behind the same server alone (bench/bare_wsgi.py: no Django request, routing, middleware"
        " or credential), the ceiling for any endpoint's single calls, measured in the same rounds; its ratio is"
        " ceiling ÷ in-process"
    )
    if len(SERVERS) < 2:
        return
    first, second = SERVERS
    by = {(kind, server, name, n): pairs for kind, server, name, n, pairs in rows}
    print(f"\nthe servers side by side (medians of the rounds' ratios; {second} ÷ {first}: rates in the same round)")
    head = f"{'what':<8} {'workspace':<9} {'callers':>7}"
    for server in SERVERS:
        head += f" {server + ': ceiling÷in-proc':>27} {'API÷ceiling':>11}"
    print(f"{head} {f'{second}÷{first} API':>19} {'ceiling':>8}")
    for kind, server, name, n, _ in rows:
        if server != first or kind == "bare":
            continue
        line = f"{kind:<8} {name:<9} {n:>7}"
        if kind == "single":
            for each in SERVERS:
                ceiling, api = by["bare", each, name, n], by["single", each, name, n]
                in_process = statistics.median(c["rate"] / loc["rate"] for loc, c in ceiling)
                line += f" {in_process:>27.2f} {_rates_ratio(api, ceiling):>11.2f}"
            line += f" {_rates_ratio(by[kind, second, name, n], by[kind, first, name, n]):>19.2f}"
            line += f" {_rates_ratio(by['bare', second, name, n], by['bare', first, name, n]):>8.2f}"
        else:  # a batch has no ceiling: its API column is HTTP ÷ in-process
            for each in SERVERS:
                of_in_process = statistics.median(r["rate"] / loc["rate"] for loc, r in by[kind, each, name, n])
                line += f" {'-':>27} {of_in_process:>11.2f}"
            line += f" {_rates_ratio(by[kind, second, name, n], by[kind, first, name, n]):>19.2f}"
        print(line)
    print("batch: no ceiling; its API column is HTTP ÷ in-process. Target: API ÷ ceiling ≥ 0.75")


def main() -> None:
    original = django_setup()
    with bench_database(original, BENCH_DB):
        run(original)


if __name__ == "__main__":
    main()
