"""The jobs through a real Celery worker and the machine's Redis: not eager mode.

Each test starts ``celery worker`` as a separate process on the test database, with a Redis
database of its own and a visibility timeout of two seconds, so a task whose worker was
killed comes back to the next worker quickly. The test waits for the work to show in the
database (polling), never for a fixed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection

from billing.models import LedgerEntry
from billing.selectors import ledger_audit
from billing.services import workspace_create
from sigora.celery import app
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]

BROKER = os.environ.get("TEST_CELERY_BROKER", "redis://127.0.0.1:6379/14")
ROOT = Path(settings.BASE_DIR)


def redis_up() -> bool:
    import redis

    try:
        return redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def broker():
    if not redis_up():
        if os.environ.get("REDIS_URL"):
            pytest.fail(f"Redis at {BROKER} does not answer")
        pytest.skip("no Redis on 127.0.0.1:6379")
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    previous = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = BROKER, False
    yield BROKER
    app.conf.broker_url, app.conf.task_always_eager = previous
    redis.Redis.from_url(BROKER).flushdb()


def send(name: str, **kwargs) -> None:
    """Publish on a connection of its own: the app's pooled producer may have been made for the eager tests."""
    with app.connection_for_write(BROKER) as connection_:
        app.send_task(name, connection=connection_, **kwargs)


def database_url() -> str:
    db = connection.settings_dict
    host = db.get("HOST") or "127.0.0.1"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def start_worker(name: str, concurrency: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sigora.settings.test",
        "DATABASE_URL": database_url(),
        "CELERY_EAGER": "0",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_VISIBILITY_TIMEOUT": "2",
        "PYTHONPATH": str(ROOT),
    }
    pool = ["-P", "solo"] if concurrency == 1 else ["-P", "threads", "-c", str(concurrency)]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sigora",
            "worker",
            "--include",
            "tests.jobs.worker_tasks",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
            *pool,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    return worker.stdout.read() if worker.stdout else ""


def until(condition, what: str, timeout: float = 45.0, fail: bool = True) -> bool:
    """Poll for work the worker does; fail naming what never happened (or, with ``fail=False``, say so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    if fail:
        raise AssertionError(f"timed out waiting for {what}")
    return False


def due_workspaces(count: int) -> list[int]:
    owner = UserFactory()
    created = datetime(2026, 1, 10, tzinfo=ZoneInfo("UTC"))  # long ended, at the real clock
    return [workspace_create(name=f"W{i}", owner=owner, now=created).pk for i in range(count)]


def grants(ids: list[int]) -> int:
    return LedgerEntry.objects.filter(workspace_id__in=ids, kind="plan_grant").count()


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


def test_a_reset_task_through_a_real_worker_twice_at_once_grants_once(broker):
    ids = due_workspaces(40)
    worker = start_worker("twice", concurrency=2)
    try:
        for _ in range(2):  # two beats, at once
            send("billing.reset_periods")
        done = until(lambda: grants(ids) >= 80, "the worker to reset the 40 workspaces", fail=False)
    finally:
        output = stop(worker)  # a warm shutdown: both tasks have finished
    assert done, f"the worker did not reset the 40 workspaces:\n{output}"
    assert grants(ids) == 80, output
    from billing.services.resets import periods_reset

    assert periods_reset(workspace_ids=ids).workspaces == 0  # and a later pass finds nothing due
    assert books_balanced()


def test_a_worker_killed_mid_task_hands_it_to_the_next_which_finishes_exactly_once(broker, tmp_path):
    ids = due_workspaces(30)
    flag = tmp_path / "killed"
    first = start_worker("first")
    send("tests.reset_then_die", kwargs={"flag": str(flag), "batch_size": 10})
    try:
        first.wait(timeout=60)  # it dies by itself after committing one batch
    finally:
        first_output = stop(first)
    assert flag.exists(), first_output
    assert grants(ids) == 30 + 10  # the first batch committed; the rest rolled back with the process
    second = start_worker("second")
    try:
        done = until(lambda: grants(ids) == 60, "the redelivered task to finish the pass", fail=False)
    finally:
        second_output = stop(second)
    assert done, f"the redelivered task did not finish the pass:\n{second_output}"
    assert grants(ids) == 60, second_output
    for workspace_id in ids:
        assert LedgerEntry.objects.filter(workspace_id=workspace_id, kind="plan_grant").count() == 2
    assert books_balanced()
