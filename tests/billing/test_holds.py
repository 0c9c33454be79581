"""Holds: reserve before a long run, settle with the actual usage, release, expire by themselves."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing.credits import credits
from billing.errors import HoldNotFound, HoldReleased, HoldSettled, TooManyHolds
from billing.models import Hold, LedgerEntry, Wallet
from billing.selectors import balance_of
from billing.services import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    byok_set,
    charge,
    charge_batch,
    hold_place,
    hold_release,
    hold_settle,
)
from billing.services.holds import MAX_ACTIVE_HOLDS
from tests.billing.test_charge_concurrency import in_threads
from tests.conftest import balances, fund
from tests.factories import WorkspaceFactory

OPUS = 1_500  # millicredits per token


def assert_books_balance():
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert "all balanced" in out.getvalue()


def wallet_of(workspace) -> Wallet:
    return Wallet.objects.select_related("workspace__plan").get(workspace=workspace)


def untouched(workspace):
    """What a refusal must leave as it was: balances, revision, holds and the ledger."""
    wallet = Wallet.objects.get(workspace=workspace)
    return (
        wallet.plan_balance,
        wallet.topup_balance,
        wallet.revision,
        wallet.holds,
        LedgerEntry.objects.filter(workspace=workspace).count(),
        Hold.objects.filter(workspace=workspace).count(),
    )


@pytest.fixture
def funded(db):
    workspace = WorkspaceFactory()
    fund(workspace, plan=6_000, topup=4_000)  # 10,000 credits
    return workspace


# --- Placing ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_hold_reserves_without_moving_credits_and_a_charge_cannot_take_what_it_reserves(funded):
    entries = LedgerEntry.objects.filter(workspace=funded).count()
    revision = Wallet.objects.get(workspace=funded).revision
    hold = hold_place(workspace=funded, amount=credits(9_000), idempotency_key="run-1", specialist="sourcing")
    assert (hold.status, hold.amount, hold.replayed) == ("active", credits(9_000), False)
    assert hold.expires_at - hold.created_at == timedelta(minutes=15)
    # No ledger entry, no balance change: only the reservation (and the revision, for the page).
    assert balances(funded) == (credits(6_000), credits(4_000))
    assert LedgerEntry.objects.filter(workspace=funded).count() == entries
    wallet = Wallet.objects.get(workspace=funded)
    assert wallet.revision == revision + 1
    assert wallet.holds == {str(hold.pk): [credits(9_000), wallet.holds[str(hold.pk)][1]]}

    before = untouched(funded)
    with pytest.raises(InsufficientCredits) as refused:  # 1,500 credits; only 1,000 are not reserved
        charge(workspace=funded, action="linkedin-dm", idempotency_key="dm-1")
    assert refused.value.details == {
        "required": credits(1_500),
        "available": credits(1_000),
        "reserved": credits(9_000),
    }
    assert "9,000 more are reserved by holds" in refused.value.message
    assert untouched(funded) == before
    # Up to the free 1,000 still goes through.
    charge(workspace=funded, action="crustdata-search", idempotency_key="search-1")  # 500
    charge(workspace=funded, action="crustdata-search", idempotency_key="search-2")
    with pytest.raises(InsufficientCredits):
        charge(workspace=funded, action="claude-haiku", quantity=1, idempotency_key="haiku-1")
    assert_books_balance()


@pytest.mark.django_db
def test_a_batch_is_checked_against_the_available_balance_too(funded):
    hold_place(workspace=funded, amount=credits(9_500), idempotency_key="run")
    events = [{"action": "crustdata-search", "idempotency_key": f"s{i}"} for i in range(2)]  # 1,000
    before = untouched(funded)
    with pytest.raises(InsufficientCredits) as refused:
        charge_batch(workspace=funded, events=events)
    assert refused.value.details["available"] == credits(500)
    assert untouched(funded) == before
    charge_batch(workspace=funded, events=events[:1])
    assert balances(funded) == (credits(5_500), credits(4_000))


@pytest.mark.django_db
def test_a_hold_larger_than_the_available_balance_is_refused_and_writes_nothing(funded):
    hold_place(workspace=funded, amount=credits(7_000), idempotency_key="first")
    before = untouched(funded)
    with pytest.raises(InsufficientCredits) as refused:
        hold_place(workspace=funded, amount=credits(3_000) + 1, idempotency_key="second")
    assert refused.value.http_status == 402
    assert refused.value.details == {
        "required": credits(3_000) + 1,
        "available": credits(3_000),
        "reserved": credits(7_000),
    }
    assert untouched(funded) == before
    # Exactly what is available may be held.
    hold_place(workspace=funded, amount=credits(3_000), idempotency_key="second")


@pytest.mark.django_db
def test_a_replayed_hold_returns_the_first_and_another_amount_under_its_key_conflicts(funded):
    first = hold_place(workspace=funded, amount=credits(2_000), idempotency_key="run")
    again = hold_place(workspace=funded, amount=credits(2_000), idempotency_key="run")
    assert (again.pk, again.replayed) == (first.pk, True)
    assert Wallet.objects.get(workspace=funded).holds.keys() == {str(first.pk)}
    before = untouched(funded)
    with pytest.raises(IdempotencyConflict) as conflict:
        hold_place(workspace=funded, amount=credits(2_001), idempotency_key="run")
    assert (conflict.value.code, conflict.value.http_status) == ("idempotency_conflict", 409)
    assert untouched(funded) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "arguments"),
    [
        ("amount", {"amount": 0}),
        ("amount", {"amount": -5}),
        ("amount", {"amount": 1.5}),
        ("amount", {"amount": True}),
        ("expires_in", {"expires_in": 0}),
        ("expires_in", {"expires_in": 24 * 3600 + 1}),
        ("idempotency_key", {"idempotency_key": "has space"}),
        ("specialist", {"specialist": "nobody"}),
        ("metadata", {"metadata": ["not", "an", "object"]}),
    ],
)
def test_bad_hold_requests_name_the_field(funded, field, arguments):
    request = {"workspace": funded, "amount": credits(10), "idempotency_key": "k", **arguments}
    with pytest.raises(InvalidRequest) as refused:
        hold_place(**request)
    assert refused.value.field == field
    assert not Hold.objects.exists()


@pytest.mark.django_db
def test_a_closed_workspace_cannot_hold(funded):
    funded.closed_at = timezone.now()
    funded.save(update_fields=["closed_at"])
    with pytest.raises(InvalidRequest):
        hold_place(workspace=funded, amount=credits(10), idempotency_key="k")
    assert not Hold.objects.exists()


@pytest.mark.django_db
def test_a_workspace_may_hold_at_most_a_hundred_at_once_and_expired_ones_free_their_places(funded):
    for n in range(MAX_ACTIVE_HOLDS):
        hold_place(workspace=funded, amount=credits(1), idempotency_key=f"h{n}", expires_in=60)
    with pytest.raises(TooManyHolds) as refused:
        hold_place(workspace=funded, amount=credits(1), idempotency_key="one-too-many")
    assert (refused.value.code, refused.value.http_status) == ("too_many_holds", 409)
    hold_release(workspace=funded, hold_id=Hold.objects.get(idempotency_key="h0").pk)
    hold_place(workspace=funded, amount=credits(1), idempotency_key="in-its-place", expires_in=600)
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        # The 99 short holds expired: the next hold drops them from the wallet's map.
        hold_place(workspace=funded, amount=credits(1), idempotency_key="after")
    assert len(Wallet.objects.get(workspace=funded).holds) == 2


# --- Settling ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_settling_below_the_hold_charges_the_actual_usage_and_frees_the_rest(funded):
    hold = hold_place(workspace=funded, amount=credits(9_000), idempotency_key="run", specialist="sourcing")
    settled = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=2_000)  # 3,000
    entry = settled.entry
    assert not settled.replayed
    assert (entry.kind, entry.action.key, entry.quantity, entry.unit_price) == ("usage", "claude-opus", 2_000, OPUS)
    assert (entry.plan_delta, entry.topup_delta) == (-credits(3_000), 0)
    assert entry.specialist_id == "sourcing"  # an AI call is the hold's specialist's unless named
    assert entry.idempotency_key == f"hold:{hold.pk}"
    hold.refresh_from_db()
    assert (hold.status, hold.settled_entry_id) == ("settled", entry.pk)
    assert hold.closed_at is not None
    wallet = Wallet.objects.get(workspace=funded)
    assert (wallet.plan_balance, wallet.topup_balance, wallet.holds) == (credits(3_000), credits(4_000), {})
    # The 6,000 not used are free again.
    hold_place(workspace=funded, amount=credits(7_000), idempotency_key="next")
    assert_books_balance()


@pytest.mark.django_db
def test_settling_above_the_hold_uses_what_is_free_beyond_it(funded):
    other = hold_place(workspace=funded, amount=credits(2_000), idempotency_key="other-run")
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run")
    # 5,000 free beyond both holds: this run may use its 3,000 and all 5,000 free, not the other's 2,000.
    settled = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=5_000)  # 7,500
    assert settled.entry.amount == -credits(7_500)
    assert (settled.entry.plan_delta, settled.entry.topup_delta) == (-credits(6_000), -credits(1_500))
    wallet = Wallet.objects.get(workspace=funded)
    assert wallet.total == credits(2_500)
    assert wallet.holds.keys() == {str(other.pk)}
    with pytest.raises(InsufficientCredits):  # only 500 are not reserved
        charge(workspace=funded, action="linkedin-dm", idempotency_key="dm")


@pytest.mark.django_db
def test_settling_beyond_the_hold_and_the_free_balance_is_refused_and_the_hold_stays(funded):
    hold_place(workspace=funded, amount=credits(2_000), idempotency_key="other-run")
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run")
    before = untouched(funded)
    with pytest.raises(InsufficientCredits) as refused:  # 8,001 > 3,000 held + 5,000 free
        hold_settle(workspace=funded, hold_id=hold.pk, action="claude-haiku", quantity=80_010)
    assert refused.value.details == {
        "required": credits(8_001),
        "available": credits(8_000),
        "reserved": credits(2_000),
    }
    assert untouched(funded) == before
    hold.refresh_from_db()
    assert hold.status == "active"
    # Exactly the hold plus the free balance fits.
    settled = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-haiku", quantity=80_000)
    assert settled.entry.amount == -credits(8_000)
    assert_books_balance()


@pytest.mark.django_db
def test_settling_twice_returns_the_first_settlement_and_other_usage_is_refused(funded):
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run")
    first = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1_000)
    again = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1_000)
    assert (again.entry.pk, again.replayed, again.entry.replayed) == (first.entry.pk, True, True)
    before = untouched(funded)
    with pytest.raises(HoldSettled) as refused:
        hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1_001)
    assert (refused.value.code, refused.value.http_status) == ("hold_settled", 409)
    assert untouched(funded) == before
    assert balances(funded) == (credits(4_500), credits(4_000))


@pytest.mark.django_db
def test_settling_with_a_key_another_charge_used_is_a_conflict_and_the_hold_stays(funded):
    charge(workspace=funded, action="claude-opus", quantity=10, idempotency_key="taken")
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run")
    before = untouched(funded)
    with pytest.raises(IdempotencyConflict):
        hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=10, idempotency_key="taken")
    assert untouched(funded) == before
    hold.refresh_from_db()
    assert hold.status == "active"


@pytest.mark.django_db
def test_settling_applies_byok_like_any_charge(funded):
    byok_set(workspace=funded, api_key="sk-ant-api03-" + "x" * 40, actor=None)
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run")
    settled = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1_000)
    assert (settled.entry.amount, settled.entry.byok, settled.entry.list_amount) == (0, True, credits(1_500))
    assert Wallet.objects.get(workspace=funded).holds == {}


@pytest.mark.django_db
def test_a_daily_cap_still_applies_when_settling_and_a_refusal_leaves_the_hold(funded):
    """A hold reserves credits, not cap room: the owner's cap is the last word (documented)."""
    from billing.services import DailyCapReached, cap_set

    cap_set(workspace=funded, specialist="sourcing", daily_cap=credits(1_000))
    hold = hold_place(workspace=funded, amount=credits(3_000), idempotency_key="run", specialist="sourcing")
    before = untouched(funded)
    with pytest.raises(DailyCapReached):
        hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1_000)  # 1,500
    assert untouched(funded) == before
    hold.refresh_from_db()
    assert hold.status == "active"
    hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=600)  # 900 fits the cap
    assert Wallet.objects.get(workspace=funded).holds == {}


@pytest.mark.django_db
def test_a_hold_of_another_workspace_is_not_found(funded):
    hold = hold_place(workspace=funded, amount=credits(1_000), idempotency_key="run")
    stranger = WorkspaceFactory()
    with pytest.raises(HoldNotFound) as missing:
        hold_settle(workspace=stranger, hold_id=hold.pk, action="claude-opus", quantity=1)
    assert (missing.value.code, missing.value.http_status) == ("hold_not_found", 404)
    with pytest.raises(HoldNotFound):
        hold_release(workspace=stranger, hold_id=hold.pk)
    with pytest.raises(HoldNotFound):
        hold_release(workspace=funded, hold_id=hold.pk + 1_000)
    assert Hold.objects.get(pk=hold.pk).status == "active"


# --- Releasing and expiry ---------------------------------------------------------------------


@pytest.mark.django_db
def test_releasing_frees_the_reservation_once_and_a_settled_or_released_hold_stays_so(funded):
    hold = hold_place(workspace=funded, amount=credits(9_000), idempotency_key="run")
    released = hold_release(workspace=funded, hold_id=hold.pk)
    assert (released.status, released.replayed) == ("released", False)
    assert Wallet.objects.get(workspace=funded).holds == {}
    charge(workspace=funded, action="crustdata-enrich", idempotency_key="enrich")  # 5,000: free again
    again = hold_release(workspace=funded, hold_id=hold.pk)
    assert (again.status, again.replayed) == ("released", True)
    with pytest.raises(HoldReleased) as refused:
        hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=1)
    assert (refused.value.code, refused.value.http_status) == ("hold_released", 409)

    settled = hold_place(workspace=funded, amount=credits(1_000), idempotency_key="run-2")
    hold_settle(workspace=funded, hold_id=settled.pk, action="claude-opus", quantity=10)
    before = untouched(funded)
    with pytest.raises(HoldSettled):
        hold_release(workspace=funded, hold_id=settled.pk)
    assert untouched(funded) == before
    assert_books_balance()


@pytest.mark.django_db
def test_an_expired_hold_reserves_nothing_and_settles_as_a_plain_charge(funded):
    hold = hold_place(workspace=funded, amount=credits(9_000), idempotency_key="run", expires_in=600)
    with time_machine.travel(timezone.now() + timedelta(seconds=599), tick=False):
        with pytest.raises(InsufficientCredits):
            charge(workspace=funded, action="linkedin-dm", idempotency_key="dm-early")
        assert balance_of(wallet_of(funded)).reserved == credits(9_000)
    with time_machine.travel(hold.expires_at, tick=False):
        assert hold.is_expired(timezone.now())
        assert balance_of(wallet_of(funded)).reserved == 0
        charge(workspace=funded, action="crustdata-enrich", idempotency_key="enrich")  # 5,000 of 10,000
        # The run's usage is still recorded, against the available balance: 4,000 of the 5,000 left.
        settled = hold_settle(workspace=funded, hold_id=hold.pk, action="claude-opus", quantity=2_666)
        assert settled.entry.amount == -2_666 * OPUS
        late = hold_place(workspace=funded, amount=credits(1), idempotency_key="late", expires_in=1)
    with time_machine.travel(late.expires_at, tick=False), pytest.raises(InsufficientCredits):
        # An expired hold cannot overdraw: 1,001 credits are left and this costs 5,000.
        hold_settle(workspace=funded, hold_id=late.pk, action="crustdata-enrich", quantity=1)
    assert Hold.objects.get(idempotency_key="late").status == "active"
    assert_books_balance()


@pytest.mark.django_db
def test_verify_ledger_checks_the_wallets_map_against_the_active_holds(funded):
    kept = hold_place(workspace=funded, amount=credits(100), idempotency_key="kept", expires_in=60)
    gone = hold_place(workspace=funded, amount=credits(200), idempotency_key="gone", expires_in=600)
    with time_machine.travel(kept.expires_at, tick=False):
        hold_place(workspace=funded, amount=credits(1), idempotency_key="prunes")  # drops the expired one
        assert_books_balance()  # an expired hold missing from the map is as it should be
        # Break it as a bug would: one hold's reservation lost, one released row still reserving.
        holds = dict(Wallet.objects.get(workspace=funded).holds)
        holds.pop(str(gone.pk))
        holds["999999"] = [credits(5), holds[next(iter(holds))][1]]
        Wallet.objects.filter(workspace=funded).update(holds=holds)
        out, err = StringIO(), StringIO()
        with pytest.raises(CommandError):
            call_command("verify_ledger", stdout=out, stderr=err)
    report = out.getvalue()
    assert f"active hold #{gone.pk} (200000 mc, not expired) is missing from the wallet's holds" in report
    assert "hold #999999 reserves 5000 mc on the wallet but is not active" in report
    assert f"hold #{kept.pk}" not in report


@pytest.mark.django_db
def test_the_balance_shows_what_running_jobs_reserve(funded):
    assert balance_of(wallet_of(funded)).reserved == 0
    hold_place(workspace=funded, amount=credits(1_250), idempotency_key="a")
    hold_place(workspace=funded, amount=credits(250), idempotency_key="b")
    summary = balance_of(wallet_of(funded))
    assert (summary.total, summary.reserved, summary.available) == (credits(10_000), credits(1_500), credits(8_500))


# --- Concurrency: real threads, each on its own connection, against PostgreSQL ----------------

concurrent = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@concurrent
@pytest.mark.concurrency
def test_twenty_concurrent_holds_of_a_tenth_each_exactly_ten_succeed():
    workspace = WorkspaceFactory()
    fund(workspace, plan=6_000, topup=4_000)

    def place(index, barrier):
        barrier.wait()
        try:
            return hold_place(workspace=workspace.pk, amount=credits(1_000), idempotency_key=f"run-{index}").pk
        except InsufficientCredits:
            return None

    placed = [pk for pk in in_threads(20, place) if pk is not None]
    assert len(placed) == 10
    wallet = Wallet.objects.get(workspace=workspace)
    assert sorted(int(pk) for pk in wallet.holds) == sorted(placed)
    assert sum(amount for amount, _ in wallet.holds.values()) == credits(10_000)
    assert Hold.objects.filter(workspace=workspace, status="active").count() == 10
    with pytest.raises(InsufficientCredits):
        charge(workspace=workspace.pk, action="claude-haiku", quantity=1, idempotency_key="after")
    assert_books_balance()


@concurrent
@pytest.mark.concurrency
def test_concurrent_holds_settles_and_charges_never_overcommit_the_balance():
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=20_000)

    def worker(index, barrier):
        barrier.wait()
        seen = Counter()
        for n in range(40):
            key = f"{index}-{n}"
            try:
                if index % 2:  # charges of 500 credits
                    charge(workspace=workspace.pk, action="crustdata-search", idempotency_key=key)
                    seen["charged"] += credits(500)
                else:  # a hold of 1,000: settled for 699, released, or left running
                    hold = hold_place(workspace=workspace.pk, amount=credits(1_000), idempotency_key=key)
                    if n % 3 == 0:
                        hold_release(workspace=workspace.pk, hold_id=hold.pk)
                    elif n % 3 == 1:
                        hold_settle(workspace=workspace.pk, hold_id=hold.pk, action="claude-opus", quantity=466)
                        seen["settled"] += 466 * OPUS
            except InsufficientCredits:
                seen["refused"] += 1
        return seen

    seen = sum(in_threads(8, worker), Counter())
    wallet = Wallet.objects.get(workspace=workspace)
    running = Hold.objects.filter(workspace=workspace, status="active")
    assert sorted(int(pk) for pk in wallet.holds) == sorted(running.values_list("pk", flat=True))
    # Never overcommitted: what the running holds reserve is still there, beside all that was spent.
    assert wallet.reserved_at(timezone.now()) == credits(1_000) * running.count() <= wallet.total
    spent = seen["charged"] + seen["settled"]
    assert wallet.total == credits(20_000) - spent
    assert seen["refused"] > 0, "the balance ran out while holds and charges raced"
    usage = LedgerEntry.objects.filter(workspace=workspace, kind="usage")
    assert -sum(e.amount for e in usage) == spent
    assert usage.filter(idempotency_key__startswith="hold:").count() == Hold.objects.filter(status="settled").count()
    assert_books_balance()


@concurrent
@pytest.mark.concurrency
def test_a_hold_settled_and_released_at_once_ends_one_way_only():
    workspace = WorkspaceFactory()
    fund(workspace, plan=0, topup=50_000)
    holds = [hold_place(workspace=workspace.pk, amount=credits(1_000), idempotency_key=f"h{n}").pk for n in range(10)]

    def racer(index, barrier):
        outcomes = []
        for hold_id in holds:
            barrier.wait()
            try:
                if index % 2:
                    hold_release(workspace=workspace.pk, hold_id=hold_id)
                else:
                    hold_settle(workspace=workspace.pk, hold_id=hold_id, action="claude-opus", quantity=100)
                outcomes.append("ok")
            except (HoldSettled, HoldReleased) as lost:
                outcomes.append(lost.code)
        return outcomes

    in_threads(4, racer)
    settled = Hold.objects.filter(workspace=workspace, status="settled")
    assert settled.count() + Hold.objects.filter(workspace=workspace, status="released").count() == 10
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == settled.count()
    assert Wallet.objects.get(workspace=workspace).total == credits(50_000) - settled.count() * 100 * OPUS
    assert Wallet.objects.get(workspace=workspace).holds == {}
    assert_books_balance()


@pytest.mark.django_db
def test_the_balance_region_says_what_running_jobs_reserve_and_drops_it_when_they_expire(client):
    from django.urls import reverse

    from billing.models import Membership

    workspace = WorkspaceFactory()
    client.force_login(Membership.objects.get(workspace=workspace).user)
    first = client.get(reverse("billing:balance"))
    assert "Reserved by running jobs" not in first.content.decode()
    hold = hold_place(workspace=workspace, amount=credits(1_234), idempotency_key="run", expires_in=60)
    held = client.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=first["ETag"])
    assert held.status_code == 200
    assert 'data-testid="reserved">1,234 credits' in held.content.decode()
    with time_machine.travel(hold.expires_at, tick=False):
        # Expiry writes nothing (no new revision), yet the poll must not answer "not modified".
        expired = client.get(reverse("billing:balance"), HTTP_IF_NONE_MATCH=held["ETag"])
    assert expired.status_code == 200
    assert "Reserved by running jobs" not in expired.content.decode()


def test_the_single_charge_statement_stays_within_psycopgs_parse_cache():
    """Holds made SINGLE_SQL longer; past 4 KiB psycopg would parse it again on every charge."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    from billing.services.charging import SINGLE_SQL

    assert len(SINGLE_SQL.encode()) <= MAX_CACHED_STATEMENT_LENGTH
