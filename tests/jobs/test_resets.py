"""Period resets: anniversaries, month ends and leap years, paid plans, exactly once, concurrently."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connection

from billing.models import LedgerEntry, Plan, Subscription, Wallet, Workspace
from billing.selectors import ledger_audit
from billing.services import workspace_create
from billing.services.resets import periods_reset
from tests.conftest import fund
from tests.factories import UserFactory

FREE = 10_000 * 1000


def at(*args, tz="UTC") -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def opened(when: datetime, *, plan="free", seats=1, tz="UTC") -> Workspace:
    return workspace_create(name="W", owner=UserFactory(), plan_key=plan, seats=seats, time_zone=tz, now=when)


def period(ws) -> tuple[datetime, datetime]:
    wallet = Wallet.objects.get(workspace=ws)
    return wallet.period_start, wallet.period_end


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


@pytest.mark.django_db
def test_free_anniversaries_clamp_the_31st_and_follow_leap_years():
    ws = opened(at(2028, 1, 31, 9, 30))
    fund(ws, plan=2_500, topup=700)  # some of the bucket left, some top-ups
    seen = []
    for moment in (at(2028, 2, 29, 9, 30), at(2028, 3, 31, 9, 30), at(2028, 4, 30, 9, 30), at(2029, 2, 28, 10)):
        if moment.year == 2028:
            assert periods_reset(now=moment - timedelta(seconds=1)).workspaces == 0  # not yet due
        summary = periods_reset(now=moment)
        assert summary.workspaces == 1
        seen.append(period(ws))
    assert seen[0] == (at(2028, 2, 29, 9, 30), at(2028, 3, 31, 9, 30))
    assert seen[1] == (at(2028, 3, 31, 9, 30), at(2028, 4, 30, 9, 30))
    assert seen[2] == (at(2028, 4, 30, 9, 30), at(2028, 5, 31, 9, 30))
    # A beat down for months grants the current period only.
    assert seen[3] == (at(2029, 2, 28, 9, 30), at(2029, 3, 31, 9, 30))
    wallet = Wallet.objects.get(workspace=ws)
    assert (wallet.plan_balance, wallet.topup_balance, wallet.period_allowance) == (FREE, 700_000, FREE)
    first_expiry = LedgerEntry.objects.filter(workspace=ws, kind="plan_expiry").order_by("id").first()
    assert first_expiry.plan_delta == -2_500_000 and first_expiry.topup_balance_after == 700_000
    assert books_balanced()


@pytest.mark.django_db
def test_periods_run_on_the_workspaces_own_clock():
    ws = opened(at(2027, 3, 31, 23, 30, tz="America/New_York"), tz="America/New_York")
    periods_reset(now=at(2027, 5, 1, 4, 0))  # 30 April, midnight in New York
    start, end = period(ws)
    assert start.astimezone(ZoneInfo("America/New_York")) == at(2027, 4, 30, 23, 30, tz="America/New_York")
    assert end.astimezone(ZoneInfo("America/New_York")) == at(2027, 5, 31, 23, 30, tz="America/New_York")


@pytest.mark.django_db
def test_running_twice_grants_once_and_a_closed_workspace_is_left_alone():
    ws, closed = opened(at(2027, 1, 10)), opened(at(2027, 1, 10))
    Workspace.objects.filter(pk=closed.pk).update(closed_at=at(2027, 1, 20))
    assert periods_reset(now=at(2027, 2, 10, 1)).workspaces == 1
    assert periods_reset(now=at(2027, 2, 10, 2)).workspaces == 0
    assert LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count() == 2
    assert LedgerEntry.objects.filter(workspace=closed, kind="plan_grant").count() == 1


@pytest.mark.django_db
def test_a_running_subscription_is_granted_what_stripe_bills_now():
    ws = opened(at(2027, 1, 31, 12), plan="pro", seats=4)
    pro, maxi = Plan.objects.get(key="pro"), Plan.objects.get(key="max")
    Wallet.objects.filter(workspace=ws).update(period_anchor=at(2027, 1, 31, 12))
    Subscription.objects.create(
        workspace=ws,
        stripe_subscription_id="sub_x",
        status="active",
        plan=pro,
        seats=2,
        current_period_start=at(2027, 1, 31, 12),
        current_period_end=at(2027, 2, 28, 12),
    )
    periods_reset(now=at(2027, 2, 28, 12))
    ws.refresh_from_db()
    assert (ws.plan, ws.seats) == (pro, 2)  # fewer seats from the next period on
    assert Wallet.objects.get(workspace=ws).plan_balance == pro.allowance * 2
    Subscription.objects.filter(workspace=ws).update(plan=maxi, seats=1)
    periods_reset(now=at(2027, 3, 31, 12))
    ws.refresh_from_db()
    assert ws.plan == maxi and period(ws) == (at(2027, 3, 31, 12), at(2027, 4, 30, 12))
    # The subscription ended: Free from the next period.
    Subscription.objects.filter(workspace=ws).update(status="canceled")
    periods_reset(now=at(2027, 4, 30, 12))
    ws.refresh_from_db()
    assert ws.plan.key == "free" and Wallet.objects.get(workspace=ws).plan_balance == FREE
    assert books_balanced()


@pytest.mark.django_db
def test_an_unpaid_renewal_falls_back_to_free_three_days_in():
    ws = opened(at(2027, 6, 1), plan="max")
    maxi = Plan.objects.get(key="max")
    Subscription.objects.create(
        workspace=ws,
        stripe_subscription_id="sub_y",
        status="past_due",
        plan=maxi,
        seats=1,
        current_period_start=at(2027, 7, 1),
        current_period_end=at(2027, 8, 1),
        past_due_since=at(2027, 7, 1),
    )
    periods_reset(now=at(2027, 7, 1, 0, 5))  # the grace period: the Max bucket for now
    assert Wallet.objects.get(workspace=ws).plan_balance == maxi.allowance
    assert periods_reset(now=at(2027, 7, 3, 23)).fallbacks == []
    assert periods_reset(now=at(2027, 7, 4, 0, 1)).fallbacks == [ws.pk]
    ws.refresh_from_db()
    assert ws.plan.key == "free" and Wallet.objects.get(workspace=ws).plan_balance == FREE
    assert periods_reset(now=at(2027, 7, 5)).fallbacks == []  # once
    assert books_balanced()


@pytest.mark.django_db
def test_the_command_prints_progress_and_a_summary(capsys):
    for _ in range(5):  # periods that ended long ago: the command runs at the real clock
        opened(at(2020, 1, 15))
    call_command("run_resets", "--batch-size", "2")
    out = capsys.readouterr().out
    assert "batch 3: 5 workspace(s) reset so far" in out
    assert "5 workspace(s) reset in 3 batch(es)" in out


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.concurrency
def test_two_passes_at_once_split_the_work_and_grant_each_period_once():
    workspaces = [opened(at(2027, 1, 5)) for _ in range(60)]
    results, errors = [], []

    def run():
        try:
            results.append(periods_reset(now=at(2027, 2, 5, 1), batch_size=7).workspaces)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sum(results) == 60
    for ws in workspaces:
        assert LedgerEntry.objects.filter(workspace=ws, kind="plan_grant").count() == 2
    assert books_balanced()
