"""The plan advisor: the cheapest plan and top-up packs for the way a workspace actually uses credits.

From the day counters (``DailyUsage``, never the ledger) of the last 30 whole days, a month's
need; then, for every plan on offer, what it would cost with the packs that cover the rest, at
their list prices, and the cheapest of them against what the workspace pays now. Everything is
exact: millicredits and cents, integers only.

How it counts:
- **A month's need** is the credits debited (what BYOK leaves to Anthropic is not) over the 30
  days that ended yesterday; today is left out, being only part of a day. A workspace whose first
  counted day is more recent has fewer days of history: from 7 to 29 its usage is scaled to 30
  days, rounded up; under 7 there is no advice, only how much history is missing.
- **Plans** cost their price, times the seats for a per-seat plan (Pro: at least one seat per
  member; seats beyond that are one more way to buy 80K credits, bought only when cheapest).
- **Packs** cover what the plan's bucket does not, whole packs, any number of each. Top-up credits
  never expire (the plan bucket does, each renewal), so what a pack leaves over carries into the
  next month: buying a month's packs outright, as counted here, costs at most this.
- **What the workspace pays now** is its own plan and seats, plus the packs that usage would need
  on it. Between combinations that cost the same, staying where it is wins, then more credits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from billing import db
from billing.models import DailyUsage, Membership, Plan, TopUpPack, Workspace

ADVICE_DAYS = 30  # a month's need is 30 days of usage
MIN_HISTORY_DAYS = 7  # below a week, usage says too little about a month
# The search for the cheapest packs stops after this many combinations, keeping the best found: with the
# help page's catalog it needs a few thousand at most; only a catalog of strange pack sizes (a 50,001
# credits pack beside a 1M one) could ask for more, and the page must not wait for it.
SEARCH_LIMIT = 200_000


@dataclass(frozen=True)
class UsageWindow:
    """The credits debited over the last whole days, up to ``ADVICE_DAYS`` of them."""

    start: date  # the first day counted (the window's, or the workspace's first day of usage)
    end: date  # yesterday, in the workspace's time zone
    days: int  # days of history in the window: 0 to ADVICE_DAYS
    used: int  # millicredits debited over them
    members: int  # people in the workspace: a per-seat plan needs a seat each


# One statement, sent with the billing page's other reads: the window's credits, the first day the
# workspace ever used a credit (its history starts there) and its members. Each is read down an index
# that starts with the workspace (the counters' unique key, the memberships' unique key).
_WINDOW_SQL = f"""
SELECT (SELECT coalesce(sum(credits), 0)::bigint FROM {db.table(DailyUsage)}
        WHERE workspace_id = %(workspace)s AND day >= %(start)s AND day <= %(end)s),
       (SELECT min(day) FROM {db.table(DailyUsage)} WHERE workspace_id = %(workspace)s),
       (SELECT count(*) FROM {db.table(Membership)} WHERE workspace_id = %(workspace)s)
"""


def advisor_read(*, workspace: Workspace, today: date) -> db.Read[UsageWindow]:
    """The usage the advisor counts: the ``ADVICE_DAYS`` whole days before ``today`` (the workspace's day)."""
    end = today - timedelta(days=1)
    start = today - timedelta(days=ADVICE_DAYS)
    params = {"workspace": workspace.pk, "start": start, "end": end}
    return db.Read(_WINDOW_SQL, params, functools.partial(_window, start=start, end=end))


def _window(rows: list[tuple], *, start: date, end: date) -> UsageWindow:
    [(used, first_day, members)] = rows
    if first_day is None or first_day > end:  # no usage, or only today's
        return UsageWindow(start=end, end=end, days=0, used=0, members=members)
    first = max(start, first_day)
    return UsageWindow(start=first, end=end, days=(end - first).days + 1, used=used, members=members)


def monthly_need(window: UsageWindow) -> int | None:
    """Millicredits a month at the window's pace (scaled up to 30 days, rounded up); None below a week."""
    if window.days < MIN_HISTORY_DAYS:
        return None
    return -(-window.used * ADVICE_DAYS // window.days)


# --- The cheapest packs ---------------------------------------------------------------------------


def cheapest_cover(need: int, offers: Sequence[tuple[int, int]]) -> tuple[int, ...] | None:
    """How many of each offer, ``(millicredits, cents)`` bought any number of times, cover ``need`` for the
    fewest cents (then the most credits); None when nothing can (no offers, and something to cover).

    Exact, without trying every count. Let B be the offer with the lowest price per credit. Any other
    offer X is bought fewer than lcm(X, B) / X times: that many X hold exactly as many credits as
    lcm(X, B) / B of B, which cost no more. Nor more than it takes to cover ``need`` alone. The search
    runs over the other offers' counts within those bounds, completes each with as few B as cover the
    rest, and skips a branch once even B's price per credit for the rest could not beat the best found.
    """
    counts = [0] * len(offers)
    if need <= 0:
        return tuple(counts)
    if not offers:
        return None
    best = min(range(len(offers)), key=lambda i: (Fraction(offers[i][1], offers[i][0]), -offers[i][0]))
    best_credits, best_cents = offers[best]
    others = sorted((i for i in range(len(offers)) if i != best), key=lambda i: -offers[i][0])
    limits = {
        i: min(math.lcm(offers[i][0], best_credits) // offers[i][0] - 1, -(-need // offers[i][0])) for i in others
    }

    def completed(covered: int, cents: int) -> tuple[int, int, int]:
        """The count of B that covers the rest, and the total's cents and credits."""
        extra = -(-max(need - covered, 0) // best_credits)
        return extra, cents + extra * best_cents, covered + extra * best_credits

    # Start from B alone, so the search has a price to beat from its first step.
    extra, found_cents, found_credits = completed(0, 0)
    found = [0] * len(offers)
    found[best] = extra
    visited = 0

    def search(depth: int, covered: int, cents: int) -> None:
        nonlocal found, found_cents, found_credits, visited
        visited += 1
        rest = max(need - covered, 0)
        if visited > SEARCH_LIMIT or cents + -(-rest * best_cents // best_credits) > found_cents:
            return  # even B's price per credit for the rest cannot beat what is found
        if depth == len(others) or not rest:
            extra, total, credits_ = completed(covered, cents)
            if (total, -credits_) < (found_cents, -found_credits):
                found, found_cents, found_credits = [*counts], total, credits_
                found[best] = extra
            return
        index = others[depth]
        amount, price = offers[index]
        for count in range(limits[index] + 1):
            counts[index] = count
            search(depth + 1, covered + count * amount, cents + count * price)
            if covered + count * amount >= need:
                break  # another one only costs more
        counts[index] = 0

    search(0, 0, 0)
    return tuple(found)


# --- Plans and packs together ---------------------------------------------------------------------


@dataclass(frozen=True)
class PackCount:
    pack: TopUpPack
    count: int

    @property
    def credits(self) -> int:
        return self.pack.amount * self.count

    @property
    def cents(self) -> int:
        return self.pack.price_cents * self.count


@dataclass(frozen=True)
class Combination:
    """A plan with its seats and the packs bought each month on top: what it costs and covers a month."""

    plan: Plan
    seats: int
    packs: tuple[PackCount, ...]

    @property
    def plan_credits(self) -> int:
        return self.plan.allowance_for(self.seats)

    @property
    def plan_cents(self) -> int:
        return self.plan.price_cents * self.seats if self.plan.per_seat else self.plan.price_cents

    @property
    def packs_credits(self) -> int:
        return sum(p.credits for p in self.packs)

    @property
    def packs_cents(self) -> int:
        return sum(p.cents for p in self.packs)

    @property
    def credits(self) -> int:
        return self.plan_credits + self.packs_credits

    @property
    def cents(self) -> int:
        return self.plan_cents + self.packs_cents


def cheapest_on(
    plan: Plan, *, need: int, packs: Sequence[TopUpPack], seats: int, more_seats: bool = True
) -> Combination | None:
    """``plan`` with the packs (and, per seat, ``more_seats`` beyond ``seats``) that cover ``need`` for the
    fewest cents; None when its bucket and the packs cannot (no packs on offer)."""
    seats = max(seats, 1) if plan.per_seat else 1
    offers = [(pack.amount, pack.price_cents) for pack in packs]
    if plan.per_seat and more_seats and plan.allowance > 0:
        offers.append((plan.allowance, plan.price_cents))
    counts = cheapest_cover(need - plan.allowance_for(seats), offers)
    if counts is None:
        return None
    if len(offers) > len(packs):
        seats += counts[-1]
    bought = tuple(PackCount(pack, count) for pack, count in zip(packs, counts, strict=False) if count)
    return Combination(plan=plan, seats=seats, packs=bought)


@dataclass(frozen=True)
class Advice:
    """What the advisor says. Without enough history (``need`` None) it names only the window."""

    window: UsageWindow
    need: int | None  # millicredits a month
    options: tuple[Combination, ...] = ()  # the cheapest on each plan on offer, in the plans' order
    now: Combination | None = None  # the workspace's own plan and seats, with the packs it would need
    best: Combination | None = None  # the cheapest of all those (``now`` when nothing is cheaper)

    @property
    def enough(self) -> bool:
        return self.need is not None and self.best is not None

    @property
    def days_missing(self) -> int:
        return max(MIN_HISTORY_DAYS - self.window.days, 0)

    @property
    def scaled(self) -> bool:
        return self.window.days < ADVICE_DAYS

    @property
    def saving(self) -> int:
        """Cents a month the advice saves against ``now`` (0 when staying is the cheapest)."""
        return self.now.cents - self.best.cents if self.now and self.best else 0

    @property
    def changes_plan(self) -> bool:
        """Whether the advice is another plan or another number of seats (not only packs)."""
        if self.best is None or self.now is None:
            return False
        return (self.best.plan.pk, self.best.seats) != (self.now.plan.pk, self.now.seats)

    @property
    def rows(self) -> list[tuple[Combination, bool, bool]]:
        """The table: each combination with whether it is the advice and whether it is today's.

        The plans on offer, then today's own when it is none of them (more seats than members, a retired plan).
        """
        shown = [*self.options] + ([self.now] if self.now and self.now not in self.options else [])
        return [(each, each == self.best, each == self.now) for each in shown]


def plan_advice(
    *, window: UsageWindow, plans: Sequence[Plan], packs: Sequence[TopUpPack], current: Plan, seats: int
) -> Advice:
    """The cheapest of ``plans`` with ``packs`` for the window's usage, against ``current`` × ``seats`` now."""
    need = monthly_need(window)
    if need is None:
        return Advice(window=window, need=None)
    members = max(window.members, 1)
    options = tuple(
        option for plan in plans if (option := cheapest_on(plan, need=need, packs=packs, seats=members)) is not None
    )
    now = cheapest_on(current, need=need, packs=packs, seats=seats, more_seats=False)
    considered = [*([now] if now else []), *options]
    if not considered:
        return Advice(window=window, need=need)
    # Ties: staying as it is, then more credits for the money, then the plans' order.
    best = min(considered, key=lambda c: (c.cents, c != now, -c.credits))
    return Advice(window=window, need=need, options=options, now=now, best=best)
