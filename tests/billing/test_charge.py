"""charge(): the contract other services rely on, rule by rule."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from billing.credits import credits
from billing.models import Action, DailyUsage, LeadState, LedgerEntry, RefusalTally, Wallet
from billing.services import (
    BillingError,
    DailyCapReached,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    SequencePaused,
    UnknownAction,
    byok_remove,
    byok_set,
    cap_set,
    charge,
    record_reply,
    resume_lead,
)
from tests.conftest import balances, fund
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

BYOK_KEY = "sk-ant-api03-" + "x" * 40


def snapshot(workspace):
    """Everything a refused charge must leave untouched."""
    wallet = Wallet.objects.get(workspace=workspace)
    return (
        wallet.plan_balance,
        wallet.topup_balance,
        wallet.revision,
        wallet.day_spend,
        LedgerEntry.objects.filter(workspace=workspace).count(),
        list(DailyUsage.objects.filter(workspace=workspace).values_list("credits", "events")),
    )


def test_the_public_contract_imports():
    from billing.errors import BillingError as FromErrors
    from billing.services import BillingError as FromServices
    from billing.services import charge, charge_batch, record_reply, resume_lead  # noqa: F401

    assert FromErrors is FromServices


def test_a_charge_returns_its_entry_with_both_buckets_and_balances_after(workspace):
    entry = charge(workspace=workspace, action="claude-haiku", quantity=7, idempotency_key="call-1")
    assert (entry.kind, entry.quantity, entry.unit_price, entry.list_amount) == ("usage", 7, 100, 700)
    assert (entry.plan_delta, entry.topup_delta) == (-700, 0)  # exactly 0.7 credits
    assert (entry.plan_balance_after, entry.topup_balance_after) == (credits(10_000) - 700, 0)
    assert entry.pk == LedgerEntry.objects.get(idempotency_key="call-1").pk
    assert not entry.replayed
    assert balances(workspace) == (credits(10_000) - 700, 0)


def test_the_plan_bucket_goes_first_and_one_charge_may_span_both(workspace):
    fund(workspace, plan=1_000, topup=2_000)
    first = charge(workspace=workspace, action="claude-sonnet", quantity=2_000, idempotency_key="a")  # 600
    assert (first.plan_delta, first.topup_delta) == (-credits(600), 0)
    spanning = charge(workspace=workspace, action="crustdata-search", quantity=1, idempotency_key="b")  # 500
    assert (spanning.plan_delta, spanning.topup_delta) == (-credits(400), -credits(100))
    assert (spanning.plan_balance_after, spanning.topup_balance_after) == (0, credits(1_900))
    last = charge(workspace=workspace, action="linkedin-dm", idempotency_key="c")
    assert (last.plan_delta, last.topup_delta, last.topup_balance_after) == (0, -credits(1_500), credits(400))


def test_no_overdraft_and_a_refusal_writes_nothing(workspace):
    fund(workspace, plan=4_000, topup=900)
    before = snapshot(workspace)
    with pytest.raises(InsufficientCredits) as refusal:
        charge(workspace=workspace, action="crustdata-enrich", idempotency_key="enrich-1")
    assert refusal.value.code == "insufficient_credits"
    assert refusal.value.details == {"required": credits(5_000), "available": credits(4_900)}
    assert "needs 5,000 and 4,900 are left" in refusal.value.message
    assert snapshot(workspace) == before
    assert not LedgerEntry.objects.filter(idempotency_key="enrich-1").exists()
    tally = RefusalTally.objects.get(workspace=workspace)
    assert (tally.code, tally.refusals, tally.credits) == ("insufficient_credits", 1, credits(5_000))
    # Exactly the balance is fine.
    fund(workspace, plan=4_000, topup=1_000)
    assert charge(workspace=workspace, action="crustdata-enrich", idempotency_key="enrich-1").topup_balance_after == 0


def test_the_same_key_charges_once_and_a_retry_returns_the_first_entry(workspace):
    first = charge(workspace=workspace, action="gmail-send", idempotency_key="send-42", metadata={"to": "x"})
    after_first = balances(workspace)
    retry = charge(workspace=workspace, action="gmail-send", idempotency_key="send-42", metadata={"to": "x"})
    assert retry.pk == first.pk and retry.replayed
    assert (retry.plan_delta, retry.plan_balance_after, retry.metadata) == (
        first.plan_delta,
        first.plan_balance_after,
        {"to": "x"},
    )
    assert balances(workspace) == after_first
    assert LedgerEntry.objects.filter(idempotency_key="send-42").count() == 1


@pytest.mark.parametrize(
    "changed",
    [{"action": "linkedin-dm"}, {"quantity": 2, "action": "crustdata-search"}, {"lead": "lead-9"}],
)
def test_the_same_key_for_a_different_request_is_a_conflict(workspace, changed):
    request = {"action": "crustdata-search", "quantity": 1, "idempotency_key": "k", "lead": "lead-1"}
    charge(workspace=workspace, **request)
    before = snapshot(workspace)
    with pytest.raises(IdempotencyConflict) as conflict:
        charge(workspace=workspace, **{**request, **changed})
    assert conflict.value.code == "idempotency_conflict"
    assert snapshot(workspace) == before


def test_a_key_used_by_another_kind_of_entry_is_a_conflict(workspace):
    grant_key = LedgerEntry.objects.get(workspace=workspace).idempotency_key
    with pytest.raises(IdempotencyConflict):
        charge(workspace=workspace, action="claude-haiku", quantity=1, idempotency_key=grant_key)


def test_keys_are_per_workspace(workspace):
    other = WorkspaceFactory()
    a = charge(workspace=workspace, action="gmail-send", idempotency_key="same")
    b = charge(workspace=other, action="gmail-send", idempotency_key="same")
    assert a.pk != b.pk and not b.replayed


def test_byok_records_ai_usage_at_zero_and_still_debits_infrastructure(workspace):
    byok_set(workspace=workspace, api_key=BYOK_KEY)
    ai = charge(
        workspace=workspace, action="claude-opus", quantity=1_000, idempotency_key="opus", specialist="sourcing"
    )
    assert (ai.byok, ai.amount, ai.list_amount, ai.unit_price) == (True, 0, credits(1_500), 1_500)
    infra = charge(workspace=workspace, action="crustdata-search", quantity=2, idempotency_key="search")
    assert (infra.byok, infra.amount) == (False, -credits(1_000))
    assert balances(workspace) == (credits(9_000), 0)
    usage = DailyUsage.objects.get(workspace=workspace, action__key="claude-opus")
    assert (usage.credits, usage.list_credits, usage.quantity) == (0, credits(1_500), 1_000)  # what BYOK saved
    byok_remove(workspace=workspace)
    assert charge(workspace=workspace, action="claude-opus", quantity=10, idempotency_key="opus-2").amount == -credits(
        15
    )


def test_ai_calls_name_their_specialist_and_infrastructure_takes_the_catalogs(workspace):
    assert charge(workspace=workspace, action="claude-haiku", quantity=5, idempotency_key="a").specialist_id == "other"
    named = charge(workspace=workspace, action="claude-haiku", quantity=5, idempotency_key="b", specialist="outreach")
    assert named.specialist_id == "outreach"
    infra = charge(workspace=workspace, action="linkedin-dm", idempotency_key="c", specialist="publishing")
    assert infra.specialist_id == "outreach"


def test_daily_cap_refuses_the_charge_that_would_pass_it_until_the_day_ends(workspace):
    paris = ZoneInfo("Europe/Paris")
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    cap_set(workspace=workspace, specialist="outreach", daily_cap=credits(3_200))
    with time_machine.travel(datetime(2027, 3, 10, 22, 30, tzinfo=paris), tick=False):
        charge(workspace=workspace, action="linkedin-dm", idempotency_key="dm-1")
        charge(workspace=workspace, action="linkedin-connect", idempotency_key="dm-2")  # 3,000 spent
        charge(workspace=workspace, action="gmail-send", idempotency_key="mail-1")  # exactly 3,200: allowed
        before = snapshot(workspace)
        with pytest.raises(DailyCapReached) as refusal:
            charge(workspace=workspace, action="gmail-send", idempotency_key="mail-2")
        assert snapshot(workspace) == before
        assert refusal.value.specialist == "outreach"
        assert refusal.value.resets_at == datetime(2027, 3, 11, 0, 0, tzinfo=paris)
        assert refusal.value.as_dict()["resets_at"] == "2027-03-11T00:00:00+01:00"
        assert "Sales / Outreach has reached its daily cap of 3,200 credits" in refusal.value.message
        # Another specialist has its own day.
        charge(workspace=workspace, action="social-publish", idempotency_key="post-1")
    # Midnight in Paris (23:00 UTC): a new day, the cap starts over.
    with time_machine.travel(datetime(2027, 3, 11, 0, 0, 1, tzinfo=paris), tick=False):
        assert charge(workspace=workspace, action="gmail-send", idempotency_key="mail-2").amount == -credits(200)
    days = DailyUsage.objects.filter(workspace=workspace, specialist="outreach").values_list("day", flat=True)
    assert sorted({d.isoformat() for d in days}) == ["2027-03-10", "2027-03-11"]


def test_a_cap_of_zero_stops_a_specialist_and_removing_it_lifts_it(workspace):
    cap_set(workspace=workspace, specialist="sourcing", daily_cap=0)
    with pytest.raises(DailyCapReached):
        charge(workspace=workspace, action="crustdata-search", idempotency_key="s")
    cap_set(workspace=workspace, specialist="sourcing", daily_cap=None)
    charge(workspace=workspace, action="crustdata-search", idempotency_key="s")


def test_byok_ai_usage_does_not_count_against_a_cap(workspace):
    byok_set(workspace=workspace, api_key=BYOK_KEY)
    cap_set(workspace=workspace, specialist="other", daily_cap=credits(1))
    charge(workspace=workspace, action="claude-opus", quantity=100_000, idempotency_key="big")


def test_a_reply_pauses_the_leads_sequence_until_resumed(workspace):
    charge(workspace=workspace, action="linkedin-dm", idempotency_key="step-1", lead="lead-7")
    record_reply(workspace, "lead-7")
    before = snapshot(workspace)
    for step in ("step-2", "step-3"):
        with pytest.raises(SequencePaused) as refusal:
            charge(workspace=workspace, action="linkedin-dm", idempotency_key=step, lead="lead-7")
    assert refusal.value.code == "sequence_paused"
    assert snapshot(workspace) == before
    # Follow-ups skipped and credits saved are counted, off the ledger.
    tally = RefusalTally.objects.get(workspace=workspace, code="sequence_paused")
    assert (tally.refusals, tally.credits) == (2, credits(3_000))
    # Other leads, and work not tied to a sequence step, go on.
    charge(workspace=workspace, action="linkedin-dm", idempotency_key="other-lead", lead="lead-8")
    charge(workspace=workspace, action="linkedin-dm", idempotency_key="manual")
    resume_lead(workspace, "lead-7")
    charge(workspace=workspace, action="linkedin-dm", idempotency_key="step-2", lead="lead-7")


def test_a_retry_of_a_step_charged_before_the_reply_still_returns_its_entry(workspace):
    first = charge(workspace=workspace, action="gmail-send", idempotency_key="step-1", lead="lead-1")
    record_reply(workspace, "lead-1")
    assert charge(workspace=workspace, action="gmail-send", idempotency_key="step-1", lead="lead-1").pk == first.pk


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"quantity": 0}, InvalidRequest, "quantity"),
        ({"quantity": -5}, InvalidRequest, "quantity"),
        ({"quantity": 10_000_001}, InvalidRequest, "quantity"),
        ({"quantity": "7"}, InvalidRequest, "quantity"),
        ({"quantity": 7.0}, InvalidRequest, "quantity"),
        ({"quantity": True}, InvalidRequest, "quantity"),
        ({"action": "claude-gpt"}, UnknownAction, "action"),
        ({"action": None}, InvalidRequest, "action"),
        ({"idempotency_key": ""}, InvalidRequest, "idempotency_key"),
        ({"idempotency_key": "has space"}, InvalidRequest, "idempotency_key"),
        ({"idempotency_key": "k" * 201}, InvalidRequest, "idempotency_key"),
        ({"idempotency_key": 42}, InvalidRequest, "idempotency_key"),
        ({"specialist": "finance"}, InvalidRequest, "specialist"),
        ({"lead": 7}, InvalidRequest, "lead"),
        ({"lead": "lead\x00one"}, InvalidRequest, "lead"),  # text and jsonb cannot hold NUL
        ({"metadata": {"note": "a\x00b"}}, InvalidRequest, "metadata"),
        ({"metadata": {"a\x00": 1}}, InvalidRequest, "metadata"),
        ({"metadata": {"deep": [{"x": "\x00"}]}}, InvalidRequest, "metadata"),
        ({"metadata": ["a"]}, InvalidRequest, "metadata"),
        ({"metadata": {"x": float("nan")}}, InvalidRequest, "metadata"),
        ({"metadata": {"blob": "x" * 5_000}}, InvalidRequest, "metadata"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(workspace, kwargs, error, field):
    before = snapshot(workspace)
    with pytest.raises(error) as refusal:
        charge(**{"workspace": workspace, "action": "claude-haiku", "quantity": 7, "idempotency_key": "k", **kwargs})
    assert refusal.value.details["field"] == field
    assert refusal.value.message
    assert snapshot(workspace) == before


def test_reply_detection_refuses_a_lead_it_cannot_store(workspace):
    for bad in ("", "x" * 201, "lead\x00one", 7):
        with pytest.raises(InvalidRequest) as refusal:
            record_reply(workspace, bad)
        assert refusal.value.details["field"] == "lead"
        with pytest.raises(InvalidRequest):
            resume_lead(workspace, bad)
    assert not LeadState.objects.filter(workspace=workspace).exists()


def test_metadata_that_only_looks_like_an_escaped_nul_is_kept(workspace):
    entry = charge(workspace=workspace, action="gmail-send", idempotency_key="k", metadata={"text": "\\u0000"})
    entry.refresh_from_db()
    assert entry.metadata == {"text": "\\u0000"}


def test_per_call_actions_carry_one_call_and_searches_their_pages(workspace):
    with pytest.raises(InvalidRequest, match="1 call"):
        charge(workspace=workspace, action="linkedin-dm", quantity=2, idempotency_key="dm")
    assert charge(workspace=workspace, action="crustdata-search", quantity=3, idempotency_key="s").amount == -credits(
        1_500
    )


def test_unknown_and_closed_workspaces_are_refused(workspace):
    with pytest.raises(InvalidRequest, match="no workspace 999999"):
        charge(workspace=999_999, action="claude-haiku", quantity=1, idempotency_key="k")
    with pytest.raises(InvalidRequest):
        charge(workspace="1", action="claude-haiku", quantity=1, idempotency_key="k")
    workspace.closed_at = timezone.now()
    workspace.save()
    before = snapshot(workspace)
    with pytest.raises(InvalidRequest, match="closed") as refusal:
        charge(workspace=workspace, action="claude-haiku", quantity=1, idempotency_key="k")
    assert refusal.value.details["field"] == "workspace"
    assert snapshot(workspace) == before


def test_a_price_change_applies_from_then_on_and_history_keeps_its_price(workspace):
    old = charge(workspace=workspace, action="gmail-send", idempotency_key="before")
    Action.objects.filter(key="gmail-send").update(unit_price=credits(250))
    new = charge(workspace=workspace, action="gmail-send", idempotency_key="after")
    assert (new.unit_price, new.amount) == (credits(250), -credits(250))
    old.refresh_from_db()
    assert (old.unit_price, old.amount) == (credits(200), -credits(200))


def test_a_retired_action_is_unknown_even_to_a_stale_catalog_snapshot(workspace):
    charge(workspace=workspace, action="computer-use", idempotency_key="warm")  # snapshot loaded
    Action.objects.filter(key="computer-use").update(is_active=False)
    with pytest.raises(UnknownAction):
        charge(workspace=workspace, action="computer-use", idempotency_key="after")
    assert not LedgerEntry.objects.filter(idempotency_key="after").exists()


def test_usage_counters_roll_up_by_day_specialist_and_action(workspace):
    for i, tokens in enumerate((100, 250, 7)):
        charge(
            workspace=workspace,
            action="claude-sonnet",
            quantity=tokens,
            idempotency_key=f"s{i}",
            specialist="publishing",
        )
    charge(
        workspace=workspace, action="claude-sonnet", quantity=100, idempotency_key="s0", specialist="publishing"
    )  # a replay adds nothing
    row = DailyUsage.objects.get(workspace=workspace, action__key="claude-sonnet")
    assert (row.specialist_id, row.events, row.quantity, row.credits) == ("publishing", 3, 357, 357 * 300)
    assert row.day == timezone.now().date()


def test_inside_a_callers_transaction_a_refusal_does_not_poison_it(workspace):
    fund(workspace, plan=1, topup=0)
    with transaction.atomic():
        charge(workspace=workspace, action="claude-haiku", quantity=10, idempotency_key="ok")
        with pytest.raises(InsufficientCredits):
            charge(workspace=workspace, action="gmail-send", idempotency_key="too-much")
        with pytest.raises(IdempotencyConflict):
            charge(workspace=workspace, action="claude-haiku", quantity=9, idempotency_key="ok")
        assert Wallet.objects.get(workspace=workspace).plan_balance == 0
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == 1


def test_every_refusal_is_a_billing_error_with_a_stable_code():
    codes = {cls.code for cls in BillingError.__subclasses__()}
    assert codes >= {
        "invalid_request",
        "unknown_action",
        "insufficient_credits",
        "daily_cap_reached",
        "sequence_paused",
        "idempotency_conflict",
    }


def test_the_day_follows_the_workspaces_time_zone(workspace):
    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    with time_machine.travel(datetime(2027, 6, 1, 20, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        charge(workspace=workspace, action="gmail-send", idempotency_key="late")
    # 20:00 UTC on 1 June is 08:00 on 2 June in Auckland.
    assert DailyUsage.objects.get(workspace=workspace).day.isoformat() == "2027-06-02"
    assert Wallet.objects.get(workspace=workspace).day.isoformat() == "2027-06-02"
