"""Property tests of the plan advisor: its advice is never dearer than any combination it considered, covers the
usage, and is as cheap as a plain search through every count of every pack finds."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Plan
from billing.selectors import UsageWindow, cheapest_cover, offers, plan_advice

pytestmark = pytest.mark.django_db

K = 1_000_000  # a thousand credits, in millicredits
examples = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def brute_cover(need: int, offers_: list[tuple[int, int]]) -> int | None:
    """The fewest cents covering ``need``: every count of each offer but the last up to what covers ``need``
    alone, and as few of the last as cover the rest (more of it would only cost more)."""
    if need <= 0:
        return 0
    if not offers_:
        return None
    *firsts, (last_amount, last_price) = offers_
    ranges = [range(-(-need // amount) + 1) for amount, _ in firsts]
    cheapest = None
    for counts in itertools.product(*ranges):
        covered = sum(n * amount for n, (amount, _) in zip(counts, firsts, strict=True))
        cents = sum(n * price for n, (_, price) in zip(counts, firsts, strict=True))
        cents += -(-max(need - covered, 0) // last_amount) * last_price
        cheapest = cents if cheapest is None else min(cheapest, cents)
    return cheapest


def brute_plan(plan: Plan, need: int, packs: list[tuple[int, int]], seats: int, more_seats: bool) -> int | None:
    """The fewest cents on ``plan``: for a per-seat plan every seat count from ``seats`` up to one that alone
    covers ``need`` (with ``more_seats``), each with the cheapest packs for the rest."""
    if not plan.per_seat:
        rest = brute_cover(need - plan.allowance, packs)
        return None if rest is None else plan.price_cents + rest
    most = max(seats, -(-need // plan.allowance)) if more_seats and plan.allowance else seats
    costs = [
        plan.price_cents * n + rest
        for n in range(seats, most + 1)
        if (rest := brute_cover(need - plan.allowance * n, packs)) is not None
    ]
    return min(costs, default=None)


def test_the_advice_is_the_cheapest_combination_and_covers_the_usage():
    """With the help page's plans and packs, for any month of usage, members and current plan and seats."""
    on_offer = offers()
    plans = on_offer.plans
    packs = [offer.pack for offer in on_offer.packs]
    pack_offers = [(pack.amount, pack.price_cents) for pack in packs]

    @examples
    @given(
        used=st.integers(min_value=0, max_value=1_300 * K),
        days=st.integers(min_value=7, max_value=30),
        members=st.integers(min_value=1, max_value=3),
        current=st.sampled_from(plans),
        seats=st.integers(min_value=1, max_value=3),
    )
    def check(used, days, members, current, seats):
        end = date(2027, 6, 30)
        window = UsageWindow(start=end - timedelta(days=days - 1), end=end, days=days, used=used, members=members)
        advice = plan_advice(window=window, plans=plans, packs=packs, current=current, seats=seats)
        need = advice.need
        assert need * days >= used * 30 > (need - 1) * days  # scaled to 30 days, rounded up
        considered = [combination for combination, _, _ in advice.rows]
        assert advice.best in considered and advice.now in considered
        for combination in considered:
            assert advice.best.cents <= combination.cents
            assert combination.credits >= need
            assert combination.cents == combination.plan_cents + sum(
                p.pack.price_cents * p.count for p in combination.packs
            )
        assert advice.best.credits >= need
        assert advice.saving == advice.now.cents - advice.best.cents >= 0
        # No combination the advisor did not list is cheaper: a plain search through every count agrees.
        cheapest = min(
            [brute_plan(plan, need, pack_offers, members, more_seats=True) for plan in plans]
            + [brute_plan(current, need, pack_offers, seats, more_seats=False)]
        )
        assert advice.best.cents == cheapest
        if advice.best == advice.now:
            assert not advice.changes_plan

    check()


an_offer = st.tuples(st.integers(min_value=3, max_value=40), st.integers(min_value=1, max_value=500))


@settings(max_examples=300, deadline=None)
@given(need=st.integers(min_value=-5, max_value=150), offers_=st.lists(an_offer, max_size=4))
def test_cheapest_cover_is_as_cheap_as_trying_every_count_with_any_packs(need, offers_):
    """Any pack sizes and prices, not only the help page's: the bounds it searches within lose nothing."""
    counts = cheapest_cover(need, offers_)
    expected = brute_cover(need, offers_)
    if expected is None:
        assert counts is None
        return
    assert len(counts) == len(offers_) and all(n >= 0 for n in counts)
    assert sum(n * amount for n, (amount, _) in zip(counts, offers_, strict=True)) >= need
    assert sum(n * price for n, (_, price) in zip(counts, offers_, strict=True)) == expected
