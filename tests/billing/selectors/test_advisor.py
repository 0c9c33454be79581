"""The plan advisor against the help page's own prices (the catalog its data migration loaded) and its two
practical examples; the day counters it reads; the history it needs before it says anything."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from billing.credits import credits
from billing.models import Action, DailyUsage, Membership, Plan, TopUpPack
from billing.selectors import UsageWindow, advisor_read, cheapest_cover, offers, plan_advice
from billing.services import charge
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

YESTERDAY = date(2027, 1, 30)


def window(used_credits: int | str, *, days: int = 30, members: int = 1) -> UsageWindow:
    start = YESTERDAY - timedelta(days=days - 1)
    return UsageWindow(start=start, end=YESTERDAY, days=days, used=credits(used_credits), members=members)


def advise(used_credits: int | str, *, current: str = "max", seats: int = 1, days: int = 30, members: int = 1):
    """The advice with the catalog as the billing page reads it (the help page's plans and packs)."""
    on_offer = offers()
    return plan_advice(
        window=window(used_credits, days=days, members=members),
        plans=on_offer.plans,
        packs=[offer.pack for offer in on_offer.packs],
        current=Plan.objects.get(key=current),
        seats=seats,
    )


def described(combination) -> tuple:
    """A combination as the table shows it: plan, seats, packs bought (key × count), credits and cents."""
    packs = tuple((p.pack.key, p.count) for p in combination.packs)
    return (combination.plan.key, combination.seats, packs, combination.credits // 1000, combination.cents)


def counted(found: UsageWindow) -> tuple:
    return (found.start, found.end, found.days, found.used, found.members)


def test_the_catalog_is_the_help_pages():
    """What every figure below rests on: Free 10K, Pro $29 80K / user, Max $59 300K, Ultra $119 800K, and the packs."""
    plans = [(p.key, p.price_cents, p.allowance // 1000, p.per_seat) for p in offers().plans]
    assert plans == [
        ("free", 0, 10_000, False),
        ("pro", 2900, 80_000, True),
        ("max", 5900, 300_000, False),
        ("ultra", 11900, 800_000, False),
    ]
    packs = [(o.pack.amount // 1000, o.pack.price_cents) for o in offers().packs]
    assert packs == [(50_000, 900), (100_000, 1500), (500_000, 6300), (1_000_000, 10800)]


def test_about_200000_credits_a_month_the_figures_of_every_plan():
    """The help page says Max fits 200,000 credits. At its list prices Pro with the 100K and 50K packs ($53) covers
    them for less than Max ($59), and Free with two 100K packs ($30) for less still: the price list wins."""
    advice = advise(200_000, current="max")
    assert advice.need == credits(200_000)
    assert [described(c) for c in advice.options] == [
        ("free", 1, (("100k", 2),), 210_000, 3000),
        ("pro", 1, (("50k", 1), ("100k", 1)), 230_000, 5300),
        ("max", 1, (), 300_000, 5900),
        ("ultra", 1, (), 800_000, 11900),
    ]
    assert described(advice.best) == ("free", 1, (("100k", 2),), 210_000, 3000)
    assert described(advice.now) == ("max", 1, (), 300_000, 5900)
    assert advice.saving == 2900 and advice.changes_plan


def test_about_60000_credits_a_month_pro_covers_it_and_free_with_one_50k_pack_is_cheaper():
    advice = advise(60_000, current="pro")
    assert [described(c) for c in advice.options] == [
        ("free", 1, (("50k", 1),), 60_000, 900),
        ("pro", 1, (), 80_000, 2900),
        ("max", 1, (), 300_000, 5900),
        ("ultra", 1, (), 800_000, 11900),
    ]
    assert described(advice.best) == ("free", 1, (("50k", 1),), 60_000, 900)
    assert advice.saving == 2000
    # A credit more and one 50K pack no longer covers it: the 100K pack is cheaper than two 50K.
    assert described(advise("60000.001").best) == ("free", 1, (("100k", 1),), 110_000, 1500)


def test_the_worked_example_counted_at_the_price_list_through_real_charges_and_day_counters():
    """50 leads sourced (2 pages of 25: 1,000 credits, not the example's 4,500), 30 enriched, 30 DMs: 196,000 credits,
    charged over 30 days; the advisor reads them from the day counters the charges kept."""
    start = datetime(2027, 1, 1, 9, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        workspace = WorkspaceFactory(plan_key="max")
        fund(workspace, plan=300_000, topup=0)
    for day in range(30):
        with time_machine.travel(start + timedelta(days=day), tick=False):
            if day == 0:
                charge(workspace=workspace, action="crustdata-search", quantity=2, idempotency_key="search")
            charge(workspace=workspace, action="crustdata-enrich", idempotency_key=f"enrich-{day}")
            charge(workspace=workspace, action="linkedin-dm", idempotency_key=f"dm-{day}")
    with time_machine.travel(start + timedelta(days=30), tick=False):  # Jan 31: the window is Jan 1 to Jan 30
        today = date(2027, 1, 31)
        found = advisor_read(workspace=workspace, today=today).run()
        assert counted(found) == (date(2027, 1, 1), date(2027, 1, 30), 30, credits(196_000), 1)
        advice = plan_advice(
            window=found,
            plans=offers().plans,
            packs=[o.pack for o in offers().packs],
            current=workspace.plan,
            seats=workspace.seats,
        )
    assert described(advice.best) == ("free", 1, (("100k", 2),), 210_000, 3000)
    assert [described(c)[-1] for c in advice.options] == [3000, 5300, 5900, 11900]


def test_the_window_is_the_30_whole_days_before_today_and_counts_debits_only(workspace):
    action = Action.objects.get(key="linkedin-dm").pk

    def count(day: date, amount: int, list_amount: int | None = None) -> None:
        DailyUsage.objects.create(
            workspace=workspace,
            day=day,
            specialist_id="outreach",
            action_id=action,
            credits=credits(amount),
            list_credits=credits(amount if list_amount is None else list_amount),
        )

    today = date(2027, 3, 31)
    count(date(2027, 1, 5), 7)  # long before: starts the history, counted in no window
    count(date(2027, 2, 28), 1_000)  # 31 days before today: outside
    count(date(2027, 3, 1), 200)  # the window's first day
    count(date(2027, 3, 30), 30, list_amount=9_000)  # yesterday; BYOK left most of it to Anthropic
    count(today, 50_000)  # today is not a whole day yet
    other = WorkspaceFactory()
    DailyUsage.objects.create(
        workspace=other, day=date(2027, 3, 10), specialist_id="outreach", action_id=action, credits=1
    )
    Membership.objects.create(workspace=workspace, user=UserFactory(), role="member")
    found = advisor_read(workspace=workspace, today=today).run()
    assert counted(found) == (date(2027, 3, 1), date(2027, 3, 30), 30, credits(230), 2)


def test_below_a_week_of_history_there_is_no_advice_only_what_is_missing(workspace):
    action = Action.objects.get(key="claude-haiku").pk
    today = date(2027, 3, 31)
    assert advisor_read(workspace=workspace, today=today).run().days == 0  # no usage at all
    DailyUsage.objects.create(workspace=workspace, day=today, specialist_id="other", action_id=action, credits=5)
    assert advisor_read(workspace=workspace, today=today).run().days == 0  # only today's, not a whole day
    DailyUsage.objects.create(
        workspace=workspace, day=date(2027, 3, 25), specialist_id="other", action_id=action, credits=credits(70_000)
    )
    found = advisor_read(workspace=workspace, today=today).run()
    assert (found.start, found.days, found.used) == (date(2027, 3, 25), 6, credits(70_000))
    advice = plan_advice(window=found, plans=offers().plans, packs=[], current=workspace.plan, seats=1)
    assert not advice.enough and advice.need is None and advice.days_missing == 1
    assert advice.best is None and advice.rows == []


def test_from_a_week_on_the_usage_is_scaled_to_30_days_rounded_up():
    advice = advise(70_000, days=7)  # 300,000 a month at this pace
    assert advice.enough and advice.scaled and advice.need == credits(300_000)
    assert described(advice.now) == ("max", 1, (), 300_000, 5900)
    odd = advise("0.001", days=7)  # a millicredit in a week: 30/7 of one, rounded up to 5
    assert odd.need == 5
    assert not advise(100, days=30).scaled


def test_pro_has_a_seat_per_member_and_more_only_when_cheaper():
    advice = advise(200_000, members=3)
    pro = next(c for c in advice.options if c.plan.key == "pro")
    assert described(pro) == ("pro", 3, (), 240_000, 8700)  # three members' seats cover it; no pack needed
    # Two seats leave 340,000 to packs: three 100K and a 50K ($54) beat the 500K pack ($63).
    assert described(advise(500_000, members=2).options[1]) == ("pro", 2, (("50k", 1), ("100k", 3)), 510_000, 11200)


def test_what_the_workspace_pays_now_keeps_its_seats_and_is_shown_beside_the_plans():
    """Pro × 4 seats with one member: today's own combination is a row of its own, and the advice is cheaper."""
    advice = advise(60_000, current="pro", seats=4)
    assert described(advice.now) == ("pro", 4, (), 320_000, 11600)
    pro_row = next(c for c in advice.options if c.plan.key == "pro")
    assert described(pro_row) == ("pro", 1, (), 80_000, 2900)
    assert [(c.plan.key, c.seats, is_best, is_now) for c, is_best, is_now in advice.rows] == [
        ("free", 1, True, False),
        ("pro", 1, False, False),
        ("max", 1, False, False),
        ("ultra", 1, False, False),
        ("pro", 4, False, True),
    ]


def test_staying_wins_a_tie_and_then_the_advice_is_no_switch():
    advice = advise(0, current="free")
    assert advice.enough and advice.need == 0
    assert described(advice.best) == ("free", 1, (), 10_000, 0)
    assert advice.best == advice.now and advice.saving == 0 and not advice.changes_plan
    # At list prices nothing ties with Max; a pack priced like it does: Free + that pack is Max's 300K for $59.
    pack = TopUpPack(key="tie", amount=credits(290_000), price_cents=5900)
    on_offer = offers()
    tied = plan_advice(
        window=window(300_000),
        plans=on_offer.plans,
        packs=[pack],
        current=Plan.objects.get(key="max"),
        seats=1,
    )
    free_row = next(c for c in tied.options if c.plan.key == "free")
    assert free_row.cents == tied.now.cents == 5900
    assert tied.best == tied.now and not tied.changes_plan


def test_with_no_packs_on_offer_a_plan_whose_bucket_is_too_small_is_not_an_option():
    on_offer = offers()
    advice = plan_advice(
        window=window(500_000), plans=on_offer.plans, packs=[], current=Plan.objects.get(key="free"), seats=1
    )
    assert [described(c) for c in advice.options] == [
        ("pro", 7, (), 560_000, 20300),
        ("ultra", 1, (), 800_000, 11900),
    ]
    assert advice.now is None and described(advice.best) == ("ultra", 1, (), 800_000, 11900)


def test_cheapest_cover_takes_a_smaller_pack_when_the_best_rate_would_overshoot():
    k = credits(1_000)
    packs = [(50 * k, 900), (100 * k, 1500), (500 * k, 6300), (1_000 * k, 10800)]
    assert cheapest_cover(0, packs) == (0, 0, 0, 0)
    assert cheapest_cover(-5, packs) == (0, 0, 0, 0)
    assert cheapest_cover(1, packs) == (1, 0, 0, 0)  # a millicredit: the smallest pack
    assert cheapest_cover(51 * k, packs) == (0, 1, 0, 0)  # $15 beats 2 × $9
    assert cheapest_cover(150 * k, packs) == (1, 1, 0, 0)
    assert cheapest_cover(400 * k, packs) == (0, 4, 0, 0)  # $60 beats the 500K pack's $63
    assert cheapest_cover(450 * k, packs) == (0, 0, 1, 0)  # $63 beats 4 × 100K + 50K ($69)
    assert cheapest_cover(1_550 * k, packs) == (1, 0, 1, 1)  # $180
    assert cheapest_cover(5, []) is None


def test_a_seat_more_is_bought_when_it_is_cheaper_than_the_packs():
    """Only the 1M pack on offer: 90,000 credits on Pro take a second seat ($58), not a 1M pack ($29 + $108)."""
    on_offer = offers()
    only_1m = [o.pack for o in on_offer.packs if o.pack.key == "1m"]
    advice = plan_advice(
        window=window(90_000), plans=on_offer.plans, packs=only_1m, current=Plan.objects.get(key="pro"), seats=1
    )
    pro = next(c for c in advice.options if c.plan.key == "pro")
    assert described(pro) == ("pro", 2, (), 160_000, 5800)
    assert described(advice.now) == ("pro", 1, (("1m", 1),), 1_080_000, 13700)  # today's seats are kept as they are
    assert described(advice.best) == ("pro", 2, (), 160_000, 5800) and advice.changes_plan
