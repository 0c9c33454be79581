"""Real concurrency on real PostgreSQL: threads, each with its own connection, one hot workspace."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from billing.credits import credits
from billing.models import DailyUsage, LedgerEntry, Wallet
from billing.services import DailyCapReached, IdempotencyConflict, InsufficientCredits, cap_set, charge, charge_batch
from tests.conftest import fund
from tests.factories import WorkspaceFactory

# Committed data, so every thread's connection sees it; the catalog the migrations loaded is
# restored after each test's flush (serialized_rollback).
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.concurrency]

WRITERS = 8


def in_threads(count, work):
    """Run ``work(index, barrier)`` in ``count`` threads, each on its own database connection."""
    barrier = threading.Barrier(count)

    def run(index):
        try:
            return work(index, barrier)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def assert_books_balance():
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert "all balanced" in out.getvalue()


def test_writers_charging_until_the_credits_run_out_lose_nothing_and_never_overdraw():
    workspace = WorkspaceFactory()
    # 150 searches of 500 credits fit, with 250 credits left over that buy no further search.
    fund(workspace, plan=30_000, topup=45_250)

    def writer(index, barrier):
        barrier.wait()
        charged = []
        n = 0
        while True:
            try:
                entry = charge(workspace=workspace.pk, action="crustdata-search", idempotency_key=f"w{index}-{n}")
            except InsufficientCredits:
                return charged
            charged.append(entry)
            n += 1

    results = in_threads(WRITERS, writer)
    charged = [entry for per_writer in results for entry in per_writer]
    assert len(charged) == 150
    assert len({e.pk for e in charged}) == 150
    wallet = Wallet.objects.get(workspace=workspace)
    assert (wallet.plan_balance, wallet.topup_balance) == (0, credits(250))
    usage = LedgerEntry.objects.filter(workspace=workspace, kind="usage")
    assert usage.count() == 150
    # Every entry's balances after follow the one before: no update was lost or interleaved.
    after = list(usage.order_by("id").values_list("plan_balance_after", "topup_balance_after"))
    totals = [plan + topup for plan, topup in after]
    assert totals == [credits(75_250) - credits(500) * (i + 1) for i in range(150)]
    assert DailyUsage.objects.get(workspace=workspace).events == 150
    assert all(writer_result for writer_result in results), "every writer got some charges through"
    assert_books_balance()


def test_racing_retries_of_the_same_key_are_charged_once_and_all_get_the_same_entry():
    workspace = WorkspaceFactory()
    fund(workspace, topup=20_000)
    keys = [f"retry-{n}" for n in range(10)]

    def retrier(index, barrier):
        seen = []
        for key in keys:
            barrier.wait()  # every thread fires the same key at the same moment
            seen.append(charge(workspace=workspace.pk, action="linkedin-dm", idempotency_key=key))
        return seen

    results = in_threads(WRITERS, retrier)
    for position, key in enumerate(keys):
        entries = [per_thread[position] for per_thread in results]
        assert len({e.pk for e in entries}) == 1, key
        assert sum(not e.replayed for e in entries) == 1, key
        assert {(e.plan_delta, e.plan_balance_after) for e in entries} == {
            (entries[0].plan_delta, entries[0].plan_balance_after)
        }
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == len(keys)
    assert Wallet.objects.get(workspace=workspace).total == credits(30_000) - credits(1_500) * len(keys)
    assert_books_balance()


def test_concurrent_charges_never_pass_a_daily_cap():
    workspace = WorkspaceFactory()
    cap_set(workspace=workspace, specialist="outreach", daily_cap=credits(200 * 20))

    def sender(index, barrier):
        barrier.wait()
        outcomes = Counter()
        for n in range(10):
            try:
                charge(workspace=workspace.pk, action="gmail-send", idempotency_key=f"s{index}-{n}")
                outcomes["sent"] += 1
            except DailyCapReached:
                outcomes["capped"] += 1
        return outcomes

    outcomes = sum(in_threads(WRITERS, sender), Counter())
    assert outcomes == Counter(sent=20, capped=WRITERS * 10 - 20)
    wallet = Wallet.objects.get(workspace=workspace)
    assert wallet.day_spend == {"outreach": credits(4_000)}
    assert DailyUsage.objects.get(workspace=workspace).credits == credits(4_000)
    assert_books_balance()


def test_batches_and_single_charges_interleave_exactly():
    workspace = WorkspaceFactory()
    fund(workspace, topup=1_000_000)

    def mixed(index, barrier):
        barrier.wait()
        if index % 2:
            for n in range(5):
                events = [
                    {"action": "claude-haiku", "quantity": 7, "idempotency_key": f"b{index}-{n}-{i}"}
                    for i in range(100)
                ]
                charge_batch(workspace=workspace.pk, events=events)
        else:
            for n in range(100):
                charge(workspace=workspace.pk, action="claude-haiku", quantity=7, idempotency_key=f"c{index}-{n}")

    in_threads(WRITERS, mixed)
    events = (WRITERS // 2) * 500 + (WRITERS // 2) * 100
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == events
    wallet = Wallet.objects.get(workspace=workspace)
    assert wallet.total == credits(10_000) + credits(1_000_000) - events * 700
    assert DailyUsage.objects.get(workspace=workspace).events == events
    assert_books_balance()


def _while_holding_the_twin_open(first, retry):
    """Run ``first()`` in an open transaction, then ``retry()`` in a thread until it queues for
    the wallet's lock behind it; commit ``first`` and return what ``retry`` answered (or raised).

    This is the order the load test met by chance: a client's answer is lost, its retry's
    statement starts before the first request commits and waits for the lock that request holds.
    """
    outcome = {}
    started = threading.Event()

    def run_retry():
        try:
            connection.ensure_connection()
            outcome["pid"] = connection.connection.info.backend_pid
            started.set()
            outcome["result"] = retry()
        except Exception as error:  # handed back to the test to assert on
            outcome["error"] = error
        finally:
            started.set()
            connection.close()

    with transaction.atomic():
        first_result = first()
        thread = threading.Thread(target=run_retry)
        thread.start()
        assert started.wait(10)
        with connection.cursor() as cursor:
            for _ in range(100_000):  # until the retry's statement is queued on the wallet's row lock
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [outcome["pid"]]
                )
                if cursor.fetchone()[0]:
                    break
            else:
                raise AssertionError("the retry never queued for the lock")
    thread.join(10)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return first_result, outcome["result"]


def test_a_retry_queued_behind_its_twin_that_spent_the_last_credits_is_a_replay_not_a_refusal():
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=500)  # one search, no more

    def search():
        return charge(workspace=workspace.pk, action="crustdata-search", idempotency_key="lost-answer")

    first, retry = _while_holding_the_twin_open(search, search)
    assert (retry.pk, retry.replayed) == (first.pk, True)
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 1
    assert Wallet.objects.get(workspace=workspace).total == 0
    assert_books_balance()


def test_a_retry_queued_behind_its_twin_that_filled_the_cap_is_a_replay_not_a_refusal():
    workspace = WorkspaceFactory()
    cap_set(workspace=workspace, specialist="outreach", daily_cap=credits(200))  # one email a day

    def send():
        return charge(workspace=workspace.pk, action="gmail-send", idempotency_key="lost-answer")

    first, retry = _while_holding_the_twin_open(send, send)
    assert (retry.pk, retry.replayed) == (first.pk, True)
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 1
    assert_books_balance()


def test_a_batch_retried_behind_its_twin_that_spent_the_last_credits_is_replayed_whole():
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=1_000)  # exactly the two searches
    events = [{"action": "crustdata-search", "idempotency_key": f"lost-{n}"} for n in range(2)]

    def batch():
        return charge_batch(workspace=workspace.pk, events=events)

    first, retry = _while_holding_the_twin_open(batch, batch)
    assert [(e.pk, e.replayed) for e in retry] == [(e.pk, True) for e in first]
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 2
    assert_books_balance()


def test_a_fresh_key_queued_behind_the_charge_that_spent_the_last_credits_is_still_refused():
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=500)

    with pytest.raises(InsufficientCredits):
        _while_holding_the_twin_open(
            lambda: charge(workspace=workspace.pk, action="crustdata-search", idempotency_key="first"),
            lambda: charge(workspace=workspace.pk, action="crustdata-search", idempotency_key="second"),
        )
    assert list(
        LedgerEntry.objects.filter(workspace=workspace, kind="usage").values_list("idempotency_key", flat=True)
    ) == ["first"]


def test_a_batch_retried_behind_its_twin_with_a_key_charged_long_before_is_replayed_whole():
    # The retry's first run finds the old key and not the twin's: only the one it did not find is probed.
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=1_000)
    old = charge(workspace=workspace.pk, action="crustdata-search", idempotency_key="old")
    events = [{"action": "crustdata-search", "idempotency_key": key} for key in ("old", "lost")]

    def batch():
        return charge_batch(workspace=workspace.pk, events=events)

    first, retry = _while_holding_the_twin_open(batch, batch)
    assert first[0].pk == old.pk
    assert [(e.pk, e.replayed) for e in retry] == [(old.pk, True), (first[1].pk, True)]
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 2
    assert_books_balance()


@pytest.mark.parametrize(
    ("events", "refusal", "probed"),
    [
        # The old key is found by the first run: only the fresh one can have been written meanwhile.
        ([{"idempotency_key": "old"}, {"action": "crustdata-enrich", "idempotency_key": "new"}], InsufficientCredits,
         [["new"]]),
        # A key reused for another request is a conflict however often the batch runs: no probe.
        ([{"idempotency_key": "old", "quantity": 2}, {"idempotency_key": "new"}], IdempotencyConflict, []),
    ],
)  # fmt: skip
def test_a_refused_batch_holding_an_old_key_runs_its_statement_once(monkeypatch, events, refusal, probed):
    from billing.services import charging

    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=1_000)
    charge(workspace=workspace.pk, action="crustdata-search", idempotency_key="old")
    statements = []
    execute = charging.execute_prepared

    def counted(sql, params, **kwargs):  # the real statement, counted
        statements.append((sql, params))
        return execute(sql, params, **kwargs)

    monkeypatch.setattr(charging, "execute_prepared", counted)
    with pytest.raises(refusal):
        charge_batch(workspace=workspace.pk, events=[{"action": "crustdata-search", **event} for event in events])
    assert [sql for sql, _ in statements].count(charging.BATCH_SQL) == 1
    assert [params["keys"] for sql, params in statements if sql == charging._KEYS_WRITTEN_SQL] == probed
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 1
