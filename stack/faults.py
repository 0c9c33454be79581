"""``make faults``: the stack under load while its parts are killed and restarted; then no credit lost or counted twice.

``python -m stack.faults [--bounded]`` starts a stack of its own (free ports, ``.stack/faults/``, a fresh
database, its own Redis and the offline Stripe double), in this process, so the fault injector reaches
each part through the supervisor that runs it. It seeds the workload straight on the primary, then runs
at the same time:

* ``--clients`` (16) client processes (``stack/load.py``) charging single events and batches through
  the balancer, each key retried with the same body on a timeout, a connection error, a 5xx or a 429
  ``rate_limited``, and again after hanging up before the answer;
* webhook storms: Checkout Sessions made by the app and paid in the double, whose
  ``checkout.session.completed`` events the double delivers many times at once to the balancer;
* the faults, one after another, each at least once (repeated while ``--duration`` lasts): ``kill -9``
  of an app node (its process group); a PgBouncer restart; a PostgreSQL restart (fast shutdown, then
  start); ``kill -9`` of the Celery worker running a reset pass over ``--due`` (10,000) due workspaces,
  once some but not all are reset; a Redis restart. The supervisor starts each part again; the
  injector waits for it to say so before the next.

Then, straight on the primary: every key a client got a 2xx for has exactly its one ledger entry, the
one it was answered with, and every retry of it the same; no entry for a key whose every attempt
failed, unless a final retry returns it; every due workspace reset exactly once; every webhook event
applied exactly once; ``verify_ledger`` clean; each app node charges at the first attempt (it
reconnected by itself). It prints the figures and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.server import free_port
from stack.config import DATABASE, DOUBLE_API_KEY, HOST, ROOT, Config, app_environment, config_from, manage_command
from stack.load import ACTION, MILLI_PER_TOKEN, ClientPlan, client_run, post, retry_once
from stack.supervisor import Stopping
from stack.topology import Stack, nodes_status, tools_missing

# Tasks whose worker died are handed out again once they have been unacknowledged this long. Production
# keeps Celery's hour (a reset pass may take minutes); here a reset pass takes seconds and the run must
# see the redelivery, so the stack's workers get 5 s. A pass still running then is handed out a second
# time: resets lock their rows SKIP LOCKED and key their entries by period, so the two share the work.
VISIBILITY_TIMEOUT = 5
BACK_TIMEOUT = 90.0  # seconds for a part to be started again and ready
RESET_TIMEOUT = 180.0


@dataclass
class Options:
    clients: int = 16
    duration: float = 240.0  # seconds of load at least; the faults repeat while it lasts
    due: int = 10_000
    workspaces: int = 8
    checkouts: int = 40
    storm_copies: int = 8  # copies of one event delivered at the same time
    settle: float = 8.0  # seconds of load between two faults
    web_workers: int = 2
    stack_dir: Path = ROOT / ".stack" / "faults"


BOUNDED = {"duration": 0.0, "checkouts": 10, "settle": 2.0, "web_workers": 1, "clients": 16}


def free_ports_environment(stack_dir: Path) -> dict[str, str]:
    """A stack beside anyone else's: in ``stack_dir``, on free ports, with a Redis of its own (never the machine's)."""
    ports = iter(sorted({free_port() for _ in range(14)}))
    env = {name: value for name, value in os.environ.items() if not name.startswith("STACK_")}
    for name in ("REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    env.update(
        STACK_DIR=str(stack_dir),
        STACK_HTTP_PORT=str(next(ports)),
        STACK_STATS_PORT=str(next(ports)),
        STACK_APP_PORTS=f"{next(ports)},{next(ports)}",
        STACK_PGBOUNCER_PORT=str(next(ports)),
        STACK_PRIMARY_PORT=str(next(ports)),
        STACK_REPLICA_PORT=str(next(ports)),
        STACK_REDIS_PORT=str(next(ports)),
        STACK_STRIPE_PORT=str(next(ports)),
        PYTHONUNBUFFERED="1",
    )
    return env


def fault_environment(stack_dir: Path) -> dict[str, str]:
    """The fault test's stack: free ports, the offline Stripe double (never real Stripe), a short visibility timeout."""
    env = {name: value for name, value in free_ports_environment(stack_dir).items() if not name.startswith("STRIPE_")}
    env["CELERY_VISIBILITY_TIMEOUT"] = str(VISIBILITY_TIMEOUT)
    return env


# --- What the supervisor says, kept with its time, so the injector can wait for a part to be back ---------


@dataclass
class Events:
    said: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str) -> None:
        print(line, flush=True)
        with self.lock:
            self.said.append((time.time(), line))

    def back_since(self, name: str, since: float) -> float | None:
        with self.lock:
            return next(
                (at for at, line in self.said if at >= since and line.startswith(f"stack: {name} is back")), None
            )


@dataclass
class Fault:
    name: str
    at: float
    back_at: float | None = None
    note: str = ""


# --- Seeding, straight on the primary through the app's own services ----------------------------------------

SEED = """
import json, os
from django.contrib.auth import get_user_model
from api.credentials import service_token_create
from billing.services import workspace_create
from billing.services.adjustments import credits_adjust
from billing.credits import MAX_MILLICREDITS
from billing.services.checkout import topup_checkout_start
spec = json.loads(os.environ["FAULTS_SEED"])
staff = get_user_model().objects.create_superuser(username="faults", email="faults@sigora.test", password=None)
workspaces = []
for n in range(spec["workspaces"]):
    ws = workspace_create(name=f"faults {n}", owner=staff)
    credits_adjust(workspace_id=ws.pk, bucket="top_up", amount=MAX_MILLICREDITS, description="fault test",
                   internal_note="fault test credits", actor=staff, idempotency_key=f"faults-seed-{n}")
    workspaces.append(ws)
tokens = [service_token_create(name=f"faults {n}", created_by=staff)[1] for n in range(spec["tokens"])]
sessions = []
for n in range(spec["checkouts"]):
    purchase, _ = topup_checkout_start(workspace=workspaces[n % len(workspaces)], pack_key="50k", user=staff,
                                       return_url=spec["site"] + "/settings/billing/", cancel_url=spec["site"])
    sessions.append(purchase.stripe_checkout_session_id)
print(json.dumps({"workspaces": [ws.pk for ws in workspaces], "tokens": tokens, "sessions": sessions}))
"""

DUE = """
import json, os
from django.db import connection, transaction
from bench.resets import SETUP_SQL
tag = os.environ["FAULTS_DUE_TAG"]
with transaction.atomic(), connection.cursor() as cursor:
    cursor.execute("SELECT coalesce(max(id), 0) FROM billing_workspace")
    before = cursor.fetchone()[0]
    cursor.execute(SETUP_SQL, {"count": int(os.environ["FAULTS_DUE"]), "owner": f"faults-{tag}@sigora.test"})
    cursor.execute("SELECT min(id), max(id), count(*) FROM billing_workspace WHERE id > %s", [before])
    print(json.dumps(cursor.fetchone()))
"""


def shell(config: Config, secret: dict[str, str], script: str, **env: str) -> Any:
    """Run ``script`` in ``manage.py shell`` on the primary (straight, not pooled); its last line, as JSON."""
    direct = {**app_environment(config, secret, route="direct"), "LOG_LEVEL": "WARNING", **env}
    done = subprocess.run(manage_command("shell", "-c", script), cwd=ROOT, env=direct, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- The Stripe double's control surface -----------------------------------------------------------------------


def double(config: Config, name: str, **arguments: Any) -> Any:
    url = f"http://{HOST}:{config.ports.stripe}/_double/{name}"
    data = json.dumps(arguments).encode() if arguments else None
    headers = {"Authorization": f"Bearer {DOUBLE_API_KEY}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@dataclass
class Storm:
    """Pay each session in the double, then deliver its completion event many times at once, until stopped."""

    config: Config
    sessions: list[str]
    copies: int
    events: dict[str, str] = field(default_factory=dict)  # session: its checkout.session.completed event
    deliveries: Counter = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        for session in self.sessions:
            double(self.config, "pay_checkout", session_id=session)
        for event in double(self.config, "events"):
            if event["type"] == "checkout.session.completed" and event["data"]["object"]["id"] in self.sessions:
                self.events[event["data"]["object"]["id"]] = event["id"]
        while not self.stop.is_set() and self.events:
            event_id = random.choice(list(self.events.values()))
            for result in double(self.config, "redeliver", event_id=event_id, times=self.copies, concurrently=True)[
                "result"
            ]:
                self.deliveries[str(result)[:3]] += 1
            self.stop.wait(0.3)

    def finish(self) -> list[str]:
        """Deliver each event once more until it is answered 2xx, as Stripe retries; what never was."""
        unanswered = []
        for event_id in self.events.values():
            for _ in range(20):
                (result,) = double(self.config, "redeliver", event_id=event_id, times=1)["result"]
                self.deliveries[str(result)[:3]] += 1
                if isinstance(result, int) and 200 <= result < 300:
                    break
                time.sleep(1)
            else:
                unanswered.append(event_id)
        return unanswered


# --- The run -------------------------------------------------------------------------------------------------


class FaultRun:
    def __init__(self, options: Options, env: dict[str, str]) -> None:
        self.options = options
        self.config = config_from(env)
        self.stack = Stack(self.config, env)
        self.events = Events()
        self.stack.supervisor.say = self.events.say
        self.faults: list[Fault] = []
        self.due_sets: list[tuple[int, int, int]] = []  # (first id, last id, count) of each reset pass's workspaces
        self.failures: list[str] = []
        self.started = time.time()

    # --- Helpers -------------------------------------------------------------------------------------------

    def pid(self, name: str) -> int:
        return self.stack.supervisor.running[name].process.pid

    def primary(self) -> psycopg.Connection:
        return psycopg.connect(
            host=HOST, port=self.config.ports.primary, user="postgres", dbname=DATABASE, autocommit=True
        )

    def wait_back(self, fault: Fault, name: str) -> None:
        deadline = time.monotonic() + BACK_TIMEOUT
        while (back := self.events.back_since(name, fault.at)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not started again within {BACK_TIMEOUT:.0f} s")
            self.stack.supervisor.pause(0.1)
        fault.back_at = back

    def inject(self, name: str, part: str, signum: int, *, group: bool = False) -> Fault:
        fault = Fault(name, time.time())
        self.faults.append(fault)
        pid = self.pid(part)
        print(f"faults: {name} (pid {pid})", flush=True)
        (os.killpg if group else os.kill)(pid, signum)
        self.wait_back(fault, part)
        return fault

    # --- The faults ----------------------------------------------------------------------------------------

    def app_node_kill(self, number: int) -> None:
        """kill -9 of a whole app node (master and workers): the balancer routes round it until it is back."""
        part = f"app{number}"
        self.inject(f"kill -9 {part}", part, signal.SIGKILL, group=True)
        deadline = time.monotonic() + BACK_TIMEOUT
        while nodes_status(self.config).get(part) != "UP":
            if time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy does not see {part} UP again")
            self.stack.supervisor.pause(0.2)

    def pgbouncer_restart(self) -> None:
        # SIGTERM: PgBouncer 1.18's immediate shutdown, every client cut (SIGINT, its safe shutdown, waits
        # for each session-pool client to leave, which the app nodes' kept connections never do).
        self.inject("PgBouncer restart", "pgbouncer", signal.SIGTERM)

    def postgres_restart(self) -> None:
        self.inject("PostgreSQL restart (fast shutdown)", "primary", signal.SIGINT)

    def redis_restart(self) -> None:
        # The stack's Redis keeps nothing on disk: queues, rate-limit buckets and the cache start empty.
        self.inject("Redis restart", "redis", signal.SIGTERM)

    def reset_with_worker_kill(self, secret: dict[str, str]) -> None:
        from celery import Celery

        tag = f"due{len(self.due_sets) + 1}"
        first, last, count = shell(self.config, secret, DUE, FAULTS_DUE=str(self.options.due), FAULTS_DUE_TAG=tag)
        self.due_sets.append((first, last, count))
        moved = "SELECT count(*) FROM billing_wallet WHERE workspace_id BETWEEN %s AND %s AND period_end > now()"
        sender = Celery("faults", broker=self.config.redis_url)
        sender.conf.task_serializer = "json"
        began = time.time()
        task = sender.send_task("billing.reset_periods")
        fault = Fault(f"kill -9 worker during a reset pass over {count:,} due workspaces", 0.0)
        with self.primary() as conn:
            worker = None
            while True:
                if worker is None:
                    worker = self._worker_with(task.id)
                done = conn.execute(moved, [first, last]).fetchone()[0]
                if worker and 0 < done < count:
                    fault.at = time.time()
                    os.killpg(self.pid(worker), signal.SIGKILL)
                    fault.name = f"kill -9 {worker} during a reset pass over {count:,} due workspaces"
                    fault.note = f"{done:,} reset when killed"
                    print(f"faults: {fault.name} ({fault.note})", flush=True)
                    break
                if done == count:  # the pass ended before it could be caught: say so, count no fault
                    print(f"faults: the reset pass ended before its worker could be killed ({worker})", flush=True)
                    return
                if time.time() - began > RESET_TIMEOUT:
                    raise RuntimeError("the reset pass did not start")
                time.sleep(0.02)
            self.faults.append(fault)
            self.wait_back(fault, worker)
            while conn.execute(moved, [first, last]).fetchone()[0] < count:
                if time.time() - began > RESET_TIMEOUT:
                    raise RuntimeError(f"the reset pass was not finished in {RESET_TIMEOUT:.0f} s after the kill")
                self.stack.supervisor.pause(0.2)
        fault.note += f"; every one reset {time.time() - began:.1f} s after the task was sent"

    def _worker_with(self, task_id: str) -> str | None:
        for name in ("worker1", "worker2"):
            log = self.config.logs / f"{name}.log"
            if log.exists() and f"[{task_id}] received" in log.read_text(errors="replace"):
                return name
        return None

    def fault_cycle(self, cycle: int, secret: dict[str, str]) -> None:
        steps = [
            lambda: self.app_node_kill(1 + cycle % 2),
            self.pgbouncer_restart,
            self.postgres_restart,
            self.redis_restart,
            lambda: self.reset_with_worker_kill(secret),
        ]
        for step in steps:
            self.stack.supervisor.pause(self.options.settle)
            step()

    # --- Whole run -----------------------------------------------------------------------------------------

    def run(self) -> int:
        if missing := tools_missing(self.config):
            print(f"faults: missing {', '.join(missing)} (make stack-tools)")
            return 1
        shutil.rmtree(self.config.dir, ignore_errors=True)  # a fresh stack: the checks count from an empty ledger
        self.stack.supervisor.handle_signals()
        watcher = threading.Thread(target=self.stack.supervisor.watch, daemon=True)
        try:
            began = time.monotonic()
            self.stack.start()
            print(f"faults: stack up in {time.monotonic() - began:.0f} s", flush=True)
            return self.load_and_faults(watcher)
        except Stopping:
            print("faults: stopped before the end")
            return 1
        finally:
            self.stack.supervisor.stopping = True
            if watcher.is_alive():
                watcher.join(timeout=60)
            self.stack.supervisor.stop_all()

    def load_and_faults(self, watcher: threading.Thread) -> int:
        options, config = self.options, self.config
        secret = self._secret()
        seed = shell(
            config,
            secret,
            SEED,
            FAULTS_SEED=json.dumps(
                {
                    "workspaces": options.workspaces,
                    "tokens": options.clients + 1,
                    "checkouts": options.checkouts,
                    "site": config.url,
                }
            ),
        )
        out = config.dir / "clients"
        out.mkdir()
        # Forked, not spawned: sixteen interpreters importing this module took 20 s of a busy machine's two
        # cores. Forked before any thread of this process starts (the supervisor's watch is started next).
        fork = multiprocessing.get_context("fork")
        stop, ready = fork.Event(), fork.Semaphore(0)
        plans = [
            ClientPlan(
                n, config.url, seed["tokens"][n], tuple(seed["workspaces"]), out / f"client{n:02d}.jsonl", seed=n
            )
            for n in range(options.clients)
        ]
        clients = [fork.Process(target=client_run, args=(plan, stop, ready), daemon=True) for plan in plans]
        for client in clients:
            client.start()
        watcher.start()
        storm = Storm(config, seed["sessions"], options.storm_copies)
        storm_thread = threading.Thread(target=storm.run, daemon=True)
        storm_thread.start()
        for _ in clients:  # every client has its first answer: the load is on before the first fault
            while not ready.acquire(timeout=0.5):
                self.stack.supervisor.pause(0)
        load_began = time.time()
        print(f"faults: {options.clients} clients charging, webhook storms under way", flush=True)
        try:
            cycle = 0
            while cycle == 0 or time.time() - load_began < options.duration:
                self.fault_cycle(cycle, secret)
                cycle += 1
            self.stack.supervisor.pause(options.settle)
        finally:
            stop.set()
            storm.stop.set()
            for client in clients:
                client.join(timeout=120)
                if client.is_alive():
                    client.kill()
            storm_thread.join(timeout=60)
        load_seconds = time.time() - load_began
        unanswered = storm.finish()
        if unanswered:
            self.failures.append(f"webhook events never answered 2xx: {unanswered}")
        probe_token = seed["tokens"][-1]
        records = [json.loads(line) for path in sorted(out.glob("*.jsonl")) for line in path.read_text().splitlines()]
        records += self.nodes_charge(probe_token, seed["workspaces"][0])
        figures = self.check(records, probe_token, seed, storm)
        self.report(records, figures, storm, load_seconds)
        return 1 if self.failures else 0

    def nodes_charge(self, token: str, workspace: int) -> list[dict]:
        """After the last fault, each app node straight (not through the balancer) charges at its first attempt."""
        records = []
        for number, port in enumerate(self.config.ports.apps, start=1):
            for n in range(8):
                key = f"node{number}-{n}"
                body = {"action": ACTION, "quantity": 1, "idempotency_key": key}
                headers = {"Authorization": f"Bearer {token}", "Sigora-Workspace": str(workspace)}
                outcome, payload = post(f"http://{HOST}:{port}", "/api/v1/charges", headers, json.dumps(body).encode())
                ok = outcome.startswith("2")
                if not ok:
                    self.failures.append(
                        f"app{number} did not charge at its first attempt after the faults: {outcome} {payload}"
                    )
                answers = [[payload["entry"]["id"]]] if ok else []
                records.append(
                    {"attempts": [[time.time(), outcome]], "answers": answers, "final": outcome, "workspace": workspace}
                    | {"path": "/api/v1/charges", "keys": [key], "quantities": [1]}
                )
        return records

    # --- The checks, straight on the primary ---------------------------------------------------------------

    def check(self, records: list[dict], token: str, seed: dict, storm: Storm) -> dict[str, int]:
        figures: Counter = Counter()
        with self.primary() as conn:
            ledger: dict[tuple[int, str], list[tuple[int, int]]] = {}
            for ws, key, entry_id, amount in conn.execute(
                "SELECT workspace_id, idempotency_key, id, plan_delta + topup_delta FROM billing_ledgerentry "
                "WHERE kind = 'usage' AND workspace_id = ANY(%s)",
                [seed["workspaces"]],
            ):
                ledger.setdefault((ws, key), []).append((entry_id, amount))
            sent = set()
            for record in records:
                keys = [(record["workspace"], key) for key in record["keys"]]
                sent.update(keys)
                expected = [-q * MILLI_PER_TOKEN for q in record["quantities"]]
                found = [ledger.get(key, []) for key in keys]
                figures["duplicated"] += sum(len(rows) > 1 for rows in found)
                if record["answers"]:
                    figures["keys answered 2xx"] += len(keys)
                    if len({tuple(ids) for ids in record["answers"]}) > 1:
                        figures["duplicated"] += 1
                        self.failures.append(
                            f"retries of {record['keys']} answered different entries: {record['answers']}"
                        )
                    for rows, entry_id, amount, key in zip(found, record["answers"][0], expected, keys, strict=True):
                        if [(entry_id, amount)] != rows[:1]:
                            figures["lost"] += 1
                            self.failures.append(
                                f"{key} was answered entry {entry_id} ({amount}); the ledger has {rows}"
                            )
                    continue
                figures["keys failed"] += len(keys)
                if not any(found):
                    continue
                # Charged although no attempt got the answer: only a final retry returning it explains that.
                outcome, answer = retry_once(self.config.url, token, record)
                if outcome.startswith("2") and answer == [rows[0][0] if rows else None for rows in found]:
                    figures["failed keys a final retry returned"] += len(keys)
                else:
                    figures["duplicated"] += 1
                    self.failures.append(
                        f"{record['keys']} failed every attempt but is in the ledger ({found}); "
                        f"a final retry answered {outcome} {answer}"
                    )
            strangers = set(ledger) - sent
            if strangers:
                figures["duplicated"] += len(strangers)
                self.failures.append(
                    f"{len(strangers)} usage entries no client asked for, e.g. {sorted(strangers)[:3]}"
                )
            figures["usage entries"] = sum(len(rows) for rows in ledger.values())
            self.check_resets(conn, figures)
            self.check_webhooks(conn, figures, storm)
        verify = subprocess.run(
            manage_command("verify_ledger"),
            cwd=ROOT,
            env=app_environment(self.config, self._secret(), route="direct"),
            capture_output=True,
            text=True,
        )
        figures["verify_ledger clean"] = int(verify.returncode == 0)
        if verify.returncode:
            self.failures.append(f"verify_ledger: {verify.stdout[-2000:]}{verify.stderr[-2000:]}")
        if figures["lost"] or figures["duplicated"]:
            self.failures.append(f"lost {figures['lost']}, duplicated {figures['duplicated']}")
        return figures

    def _secret(self) -> dict[str, str]:
        lines = (self.config.dir / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def check_resets(self, conn: psycopg.Connection, figures: Counter) -> None:
        for first, last, count in self.due_sets:
            row = conn.execute(
                """
                SELECT count(*) FILTER (WHERE w.period_end > now() AND g.grants = 2 AND g.expiries = 1), count(*)
                FROM billing_wallet w
                JOIN LATERAL (SELECT count(*) FILTER (WHERE kind = 'plan_grant') AS grants,
                                     count(*) FILTER (WHERE kind = 'plan_expiry') AS expiries
                              FROM billing_ledgerentry l WHERE l.workspace_id = w.workspace_id) g ON true
                WHERE w.workspace_id BETWEEN %s AND %s
                """,
                [first, last],
            ).fetchone()
            figures["due workspaces"] += count
            figures["reset exactly once"] += row[0]
            if row != (count, count):
                self.failures.append(
                    f"of {count:,} due workspaces ({first}–{last}), {row[0]:,} were reset exactly once"
                )

    def check_webhooks(self, conn: psycopg.Connection, figures: Counter, storm: Storm) -> None:
        for session, event_id in storm.events.items():
            entries = conn.execute(  # the pack's credits, by whatever key: one entry, however many deliveries
                "SELECT count(*) FROM billing_ledgerentry WHERE kind = 'top_up' AND external_ref = %s", [session]
            ).fetchone()[0]
            purchase = conn.execute(
                "SELECT status FROM billing_purchase WHERE stripe_checkout_session_id = %s", [session]
            ).fetchone()
            events = conn.execute("SELECT status FROM billing_stripeevent WHERE event_id = %s", [event_id]).fetchall()
            if entries == 1 and purchase == ("paid",) and events == [("processed",)]:
                figures["webhooks applied once"] += 1
            else:
                self.failures.append(
                    f"{session} ({event_id}): {entries} top-up entries, purchase {purchase}, events {events}"
                )
        if len(storm.events) != len(storm.sessions):
            self.failures.append(f"{len(storm.sessions) - len(storm.events)} paid sessions had no completion event")

    # --- The figures ---------------------------------------------------------------------------------------

    def report(self, records: list[dict], figures: Counter, storm: Storm, load_seconds: float) -> None:
        attempts = [outcome for record in records for _, outcome, *_ in record["attempts"]]
        errors = Counter(outcome for outcome in attempts if not outcome.startswith("2"))
        batches = [record for record in records if record["path"].endswith("/batch")]
        load = " ".join(f"{each:.2f}" for each in os.getloadavg())
        events = sum(len(b["keys"]) for b in batches)
        print("\n== faults: figures")
        print(f"clients {self.options.clients}, load {load_seconds:.0f} s, load average {load}")
        print(
            f"requests {len(attempts):,} ({len(attempts) / load_seconds:,.0f}/s): "
            f"{len(records) - len(batches):,} single charges and {len(batches):,} batches ({events:,} events), "
            f"{figures['usage entries']:,} usage entries"
        )
        print(f"faults injected {len(self.faults)}:")
        for fault in self.faults:
            back = f"back in {fault.back_at - fault.at:.1f} s" if fault.back_at else "not back"
            print(f"  {time.strftime('%H:%M:%S', time.localtime(fault.at))}  {fault.name}: {back}  {fault.note}")
        seen = ", ".join(f"{k} {v:,}" for k, v in errors.most_common())
        print(f"errors the clients saw {sum(errors.values()):,}: {seen}")
        print(
            f"keys answered 2xx {figures['keys answered 2xx']:,}; failed every attempt {figures['keys failed']:,} "
            f"(in the ledger and returned by a final retry: {figures['failed keys a final retry returned']:,})"
        )
        due = figures["due workspaces"]
        print(f"resets: {figures['reset exactly once']:,} of {due:,} due workspaces reset exactly once")
        statuses = ", ".join(f"{k} {v:,}" for k, v in storm.deliveries.most_common())
        print(
            f"webhooks: {figures['webhooks applied once']} of {len(storm.sessions)} checkout completions applied "
            f"exactly once, {sum(storm.deliveries.values()):,} deliveries ({statuses})"
        )
        print(f"verify_ledger: {'clean' if figures['verify_ledger clean'] else 'NOT CLEAN'}")
        print(f"lost {figures['lost']}, duplicated {figures['duplicated']}")
        for failure in self.failures[:30]:
            print(f"FAILED: {failure}")
        print("faults: " + ("FAILED" if self.failures else "all checks passed"), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bounded", action="store_true", help="CI's size: each fault once, about two minutes in all")
    defaults = Options()
    for name in ("clients", "duration", "due", "workspaces", "checkouts", "settle"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)), default=None)
    parser.add_argument("--stack-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    chosen = {
        **(BOUNDED if args.bounded else {}),
        **{k: v for k, v in vars(args).items() if v is not None and k != "bounded"},
    }
    options = Options(**chosen)
    sys.stdout.reconfigure(line_buffering=True)
    env = {**fault_environment(options.stack_dir), "STACK_WEB_WORKERS": str(options.web_workers)}
    os.environ.clear()
    os.environ.update(env)  # the stack's processes take their environment from this one's
    return FaultRun(options, env).run()


if __name__ == "__main__":
    sys.exit(main())
