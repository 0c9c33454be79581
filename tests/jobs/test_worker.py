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
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection

from billing.credits import credits
from billing.models import BalanceAlert, LedgerEntry, Purchase
from billing.selectors import ledger_audit
from billing.services import charge, workspace_create
from billing.services.auto_topup import auto_topup_set
from sigora.celery import app
from sigora.embedded_db import database_url
from tests.conftest import balances
from tests.factories import UserFactory
from tests.payments.conftest import API_KEY, WEBHOOK_SECRET
from tests.payments.test_auto_topup import customer_with_card

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


def start_worker(name: str, concurrency: int = 1, **extra_env: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.jobs.worker_settings",
        "DATABASE_URL": database_url(connection.settings_dict),  # the test database, socket dir and all
        "CELERY_EAGER": "0",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_VISIBILITY_TIMEOUT": "2",
        "PYTHONPATH": str(ROOT),
        **extra_env,
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


def test_alerts_and_an_auto_top_up_through_a_real_worker_under_concurrent_charges(broker, stripe, client, tmp_path):
    """Charges from four threads drain the bucket and the balance while the worker, two tasks at a time,
    runs the alert and auto top-up jobs again and again: one "used up" email, one pack bought."""
    owner, ws = customer_with_card(client, stripe)  # Free (10,000) + a 50K pack, the card saved
    assert balances(ws) == (credits(10_000), credits(50_000))
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(55_000), pack_key="100k", monthly_limit=5)
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    worker = start_worker(
        "money",
        concurrency=2,
        TEST_EMAIL_DIR=str(mail_dir),
        STRIPE_SECRET_KEY=API_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TEST_STRIPE_API_BASE=stripe.url,
    )
    jobs = ("billing.run_auto_topups", "billing.send_balance_alerts")
    errors: list[BaseException] = []

    def spend(thread: int) -> None:
        try:
            for n in range(30):  # 30 Gmail sends of 200 credits each
                charge(workspace=ws.pk, action="gmail-send", idempotency_key=f"t{thread}-{n}")
                if n % 10 == 9:
                    for job in jobs:  # the beat firing while charges land
                        send(job)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=spend, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for job in jobs:
            send(job)

        def settled() -> bool:
            paid = Purchase.objects.filter(workspace=ws, kind="auto_top_up", status="paid").exists()
            return paid and BalanceAlert.objects.filter(workspace=ws, kind="empty", recipients__gt=0).exists()

        done = until(settled, "the worker to buy the pack and send the alert", fail=False)
    finally:
        output = stop(worker)  # a warm shutdown: the tasks running finish first
    assert not errors, errors
    assert done, f"the worker did not settle the auto top-up and the alert:\n{output}"
    # 120 sends of 200 credits: the bucket used up, the total under the 55,000 threshold once.
    assert Purchase.objects.filter(workspace=ws, kind="auto_top_up").count() == 1, output
    assert balances(ws) == (0, credits(60_000 - 24_000 + 100_000))
    assert list(BalanceAlert.objects.filter(workspace=ws).values_list("kind", flat=True)) == ["empty"]
    lines = [line for path in mail_dir.iterdir() for line in path.read_text().splitlines()]
    subjects = [line for line in lines if line.startswith("Subject:")]
    assert subjects == [f"Subject: {ws.name}: your plan's credits are used up"], subjects
    assert books_balanced()
