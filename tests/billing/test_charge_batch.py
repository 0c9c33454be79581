"""charge_batch(): up to 1,000 events in one transaction, all or nothing."""

import pytest

from billing.credits import credits
from billing.models import DailyUsage, LedgerEntry, Wallet
from billing.services import (
    DailyCapReached,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    SequencePaused,
    UnknownAction,
    cap_set,
    charge,
    charge_batch,
    record_reply,
)
from tests.conftest import balances, fund

pytestmark = pytest.mark.django_db


def event(key, action="gmail-send", **fields):
    return {"action": action, "idempotency_key": key, **fields}


def test_a_batch_charges_every_event_in_order_across_both_buckets(workspace):
    fund(workspace, plan=300, topup=1_000)
    entries = charge_batch(
        workspace=workspace,
        events=[
            event("e1"),
            event("e2"),
            event("e3", "crustdata-search", quantity=1),
            event("e4", "claude-haiku", quantity=9),
        ],
    )
    assert [e.idempotency_key for e in entries] == ["e1", "e2", "e3", "e4"]
    assert [(e.plan_delta, e.topup_delta) for e in entries] == [
        (-credits(200), 0),
        (-credits(100), -credits(100)),  # the bucket runs out mid-event
        (0, -credits(500)),
        (0, -credits("0.9")),
    ]
    assert [(e.plan_balance_after, e.topup_balance_after) for e in entries] == [
        (credits(100), credits(1_000)),
        (0, credits(900)),
        (0, credits(400)),
        (0, credits("399.1")),
    ]
    assert entries == sorted(entries, key=lambda e: e.pk)
    assert balances(workspace) == (0, credits("399.1"))


def test_all_or_nothing_when_the_last_event_cannot_be_paid(workspace):
    fund(workspace, plan=1_000, topup=0)
    before = (balances(workspace), LedgerEntry.objects.count(), DailyUsage.objects.count())
    with pytest.raises(InsufficientCredits):
        charge_batch(workspace=workspace, events=[event(f"k{i}") for i in range(6)])  # 1,200 > 1,000
    assert (balances(workspace), LedgerEntry.objects.count(), DailyUsage.objects.count()) == before
    assert len(charge_batch(workspace=workspace, events=[event(f"k{i}") for i in range(5)])) == 5


def test_one_paused_lead_or_capped_specialist_refuses_the_whole_batch(workspace):
    record_reply(workspace, "lead-3")
    with pytest.raises(SequencePaused):
        charge_batch(workspace=workspace, events=[event("a", lead="lead-1"), event("b", lead="lead-3")])
    cap_set(workspace=workspace, specialist="publishing", daily_cap=credits(250))
    with pytest.raises(DailyCapReached):
        charge_batch(
            workspace=workspace,
            events=[event("c", "social-publish"), event("d", "social-engage"), event("e", "gmail-send")],
        )
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_a_replayed_batch_returns_the_first_results_and_charges_nothing(workspace):
    events = [event(f"r{i}", "claude-haiku", quantity=10 + i) for i in range(20)]
    first = charge_batch(workspace=workspace, events=events)
    after = balances(workspace)
    again = charge_batch(workspace=workspace, events=events)
    assert [e.pk for e in again] == [e.pk for e in first]
    assert all(e.replayed for e in again) and not any(e.replayed for e in first)
    assert balances(workspace) == after


def test_events_already_charged_singly_are_returned_and_the_rest_charged(workspace):
    single = charge(workspace=workspace, action="gmail-send", idempotency_key="x1")
    entries = charge_batch(workspace=workspace, events=[event("x1"), event("x2")])
    assert entries[0].pk == single.pk and entries[0].replayed
    assert not entries[1].replayed
    assert LedgerEntry.objects.filter(kind="usage").count() == 2


def test_a_conflicting_key_refuses_the_whole_batch(workspace):
    charge(workspace=workspace, action="gmail-send", idempotency_key="x1")
    with pytest.raises(IdempotencyConflict):
        charge_batch(workspace=workspace, events=[event("x2"), event("x1", "linkedin-dm")])
    assert not LedgerEntry.objects.filter(idempotency_key="x2").exists()


@pytest.mark.parametrize(
    ("events", "error", "field"),
    [
        ([], InvalidRequest, "events"),
        ("not a list", InvalidRequest, "events"),
        ([event(f"k{i}") for i in range(1_001)], InvalidRequest, "events"),
        ([event("same"), event("same")], InvalidRequest, "events"),
        ([event("a"), "oops"], InvalidRequest, "events[1]"),
        ([event("a"), {"action": "gmail-send"}], InvalidRequest, "events[1].idempotency_key"),
        ([event("a"), event("b", quantity=0)], InvalidRequest, "events[1].quantity"),
        ([event("a"), event("b", "nope")], UnknownAction, "events[1].action"),
        ([event("a", colour="red")], InvalidRequest, "events[0].colour"),
    ],
)
def test_bad_batches_name_the_event_and_field_and_write_nothing(workspace, events, error, field):
    before = Wallet.objects.get(workspace=workspace).revision
    with pytest.raises(error) as refusal:
        charge_batch(workspace=workspace, events=events)
    assert refusal.value.details["field"] == field
    assert Wallet.objects.get(workspace=workspace).revision == before
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_a_full_batch_of_a_thousand(workspace):
    fund(workspace, topup=1_000_000)
    entries = charge_batch(
        workspace=workspace, events=[event(f"k{i}", "claude-haiku", quantity=1 + i % 50) for i in range(1_000)]
    )
    assert len(entries) == 1_000
    total = sum(100 * (1 + i % 50) for i in range(1_000))
    assert -sum(e.amount for e in entries) == total
    usage = DailyUsage.objects.get(workspace=workspace)
    assert (usage.events, usage.credits) == (1_000, total)
