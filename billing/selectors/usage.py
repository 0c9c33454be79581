"""The current period's usage by day, tool and specialist, and the forecast of when the credits run out.

Raw SQL (``billing.db``): a measured hot path, read from the day counters (never the ledger)
in one statement that also brings the workspace's daily caps, and sent with the billing page's
other reads in one round trip (``db.reads_run``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

from billing import db
from billing.models import DailyUsage, RefusalTally, SpecialistCap, Wallet
from billing.selectors.catalog import specialist_label, specialist_names, tool_names

FORECAST_HORIZON_DAYS = 3_650  # past ten years a forecast says nothing useful


@dataclass(frozen=True)
class ToolUsage:
    key: str
    label: str
    credits: int
    list_credits: int
    quantity: int
    events: int
    unit: str
    action_id: int  # the catalog action, whose id gives the tool its colour (billing.charts.tool_style)


@dataclass(frozen=True)
class UsageSummary:
    start: date
    end: date
    today: date
    days: list[date]
    by_day: dict[date, dict[str, int]]
    tools: list[ToolUsage]
    specialists: list[tuple[str, int]]
    total: int
    byok_saved: int
    followups_skipped: int
    reply_saved: int
    runs_out_on: date | None  # the plan bucket, at this period's pace; None: beyond the forecast's horizon
    total_runs_out_on: date | None  # the bucket and the top-up credits after it
    plan_balance: int  # what is left in the bucket, and
    topup_balance: int  # what the second forecast adds to the first
    spent_today: dict[str, int]  # credits per specialist key on ``today``, for the daily caps
    daily_caps: dict[str, int]  # the caps themselves, read in the same query


# One round trip for the usage region and the caps beside it, each row labelled: the period's day
# counters ("used"), one row per tool and specialist with its days (as offsets from the period's
# first) and credits in two parallel arrays, so a month comes back as a dozen rows rather than a
# few hundred (converting rows, not reading them, was most of this query's time); the follow-ups
# reply detection skipped and what they would have cost, as one row ("refused"); and the
# workspace's daily caps, a few rows at most ("cap").
_USAGE_SQL = f"""
SELECT 'used', action_id, specialist_id, array_agg(day - %(start)s), array_agg(credits),
       sum(list_credits)::bigint, sum(quantity)::bigint, sum(events)::bigint
FROM {db.table(DailyUsage)}
WHERE workspace_id = %(workspace)s AND day >= %(start)s AND day <= %(until)s
GROUP BY action_id, specialist_id
UNION ALL
SELECT 'refused', NULL, NULL, NULL, NULL, coalesce(sum(credits), 0)::bigint, coalesce(sum(refusals), 0)::bigint, 0
FROM {db.table(RefusalTally)}
WHERE workspace_id = %(workspace)s AND day >= %(start)s AND day <= %(today)s AND code = 'sequence_paused'
UNION ALL
SELECT 'cap', NULL, specialist_id, NULL, NULL, daily_cap, 0, 0
FROM {db.table(SpecialistCap)}
WHERE workspace_id = %(workspace)s
"""


def usage_read(*, wallet: Wallet, today: date) -> db.Read[UsageSummary]:
    """The current period's usage from the day counters (never the ledger), and the forecast.

    ``wallet`` comes with its workspace, as the membership read loads them.
    """
    zone = wallet.workspace.zone
    start = wallet.period_start.astimezone(zone).date()
    end = wallet.period_end.astimezone(zone).date()
    params = {"workspace": wallet.workspace_id, "start": start, "until": max(today, start), "today": today}
    return db.Read(_USAGE_SQL, params, functools.partial(_usage, wallet=wallet, today=today, start=start, end=end))


def usage_summary(*, wallet: Wallet, today: date) -> UsageSummary:
    """The period's usage (see ``usage_read``)."""
    return usage_read(wallet=wallet, today=today).run()


def _usage(rows: list[tuple], *, wallet: Wallet, today: date, start: date, end: date) -> UsageSummary:
    days = [start + timedelta(days=n) for n in range((min(today, end) - start).days + 1)]
    by_day: dict[date, dict[str, int]] = {day: {} for day in days}
    dates = dict(enumerate(days))  # offset -> date, grown for days past the period's end
    today_offset = (today - start).days
    tools: dict[int, list[int]] = {}  # action id: [credits, list credits, quantity, events]
    by_specialist: dict[str, int] = {}
    spent_today: dict[str, int] = {}
    daily_caps: dict[str, int] = {}
    followups_skipped = reply_saved = 0
    names = tool_names(row[1] for row in rows)
    for what, action, specialist, offsets, amounts, list_credits, quantity, events in rows:
        if what == "cap":
            daily_caps[specialist] = list_credits
            continue
        if what == "refused":
            reply_saved, followups_skipped = list_credits, quantity
            continue
        key = names[action].key
        credits_ = 0
        for offset, amount in zip(offsets, amounts, strict=True):
            day = dates.get(offset) or dates.setdefault(offset, start + timedelta(days=offset))
            spent = by_day.setdefault(day, {})
            spent[key] = spent.get(key, 0) + amount
            credits_ += amount
            if offset == today_offset:
                spent_today[specialist] = spent_today.get(specialist, 0) + amount
        sums = tools.setdefault(action, [0, 0, 0, 0])
        sums[0] += credits_
        sums[1] += list_credits
        sums[2] += quantity
        sums[3] += events
        by_specialist[specialist] = by_specialist.get(specialist, 0) + credits_
    tool_list = sorted(
        (
            ToolUsage(names[action].key, names[action].label, *sums, unit=names[action].unit, action_id=action)
            for action, sums in tools.items()
        ),
        key=lambda t: -t.credits,
    )
    total = sum(t.credits for t in tool_list)
    specialists: dict[str, int] = {}
    labels = specialist_names()
    for key, amount in by_specialist.items():
        label = specialist_label(key, labels)
        specialists[label] = specialists.get(label, 0) + amount
    # The forecast: the pace so far this period, carried forward.
    elapsed = max((today - start).days + 1, 1)

    def lasts_until(balance: int) -> date | None:
        if total <= 0:
            return None
        days = balance * elapsed // total  # whole days the balance lasts at the average daily spend
        return today + timedelta(days=days) if days <= FORECAST_HORIZON_DAYS else None

    return UsageSummary(
        start=start,
        end=end,
        today=today,
        days=days,
        by_day=by_day,
        tools=tool_list,
        specialists=sorted(specialists.items(), key=lambda item: -item[1]),
        total=total,
        byok_saved=sum(t.list_credits - t.credits for t in tool_list),
        followups_skipped=followups_skipped,
        reply_saved=reply_saved,
        runs_out_on=lasts_until(wallet.plan_balance),
        total_runs_out_on=lasts_until(wallet.total),
        plan_balance=wallet.plan_balance,
        topup_balance=wallet.topup_balance,
        spent_today=spent_today if start <= today else {},
        daily_caps=daily_caps,
    )
