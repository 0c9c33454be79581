"""The usage chart's geometry (billing/charts.py) and the markup its partial draws from it."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta

import pytest
from django.template.loader import render_to_string
from hypothesis import given
from hypothesis import strategies as st

from billing.charts import (
    BAR,
    MARKS,
    OTHER,
    OTHER_STYLE,
    PALETTE,
    TICK_INTERVALS,
    nice_step,
    tool_style,
    usage_chart,
)
from billing.credits import credits, format_credits
from billing.selectors import ToolUsage, UsageSummary

NOV_1 = date(2026, 11, 1)
DEC_1 = date(2026, 12, 1)  # a period of Nov 1 – Dec 1, as the page heads it: 31 days


def usage_of(by_day: dict[date, dict[str, int]], *, start=NOV_1, end=DEC_1, today=None, ids=None) -> UsageSummary:
    """A period's usage as the selector gives it: tools busiest first, each tool's action id from ``ids``."""
    totals: dict[str, int] = {}
    for spent in by_day.values():
        for key, amount in spent.items():
            totals[key] = totals.get(key, 0) + amount
    ids = ids or {}
    tools = [
        ToolUsage(key, key.title(), amount, amount, 1, 1, unit="call", action_id=ids.get(key, n))
        for n, (key, amount) in enumerate(sorted(totals.items(), key=lambda item: -item[1]), start=1)
    ]
    today = today or max(by_day, default=start)
    days = [start + timedelta(days=n) for n in range((min(today, end) - start).days + 1)]
    return UsageSummary(
        start=start, end=end, today=today, days=days, by_day=by_day, tools=tools, specialists=[],
        total=sum(totals.values()), byok_saved=0, followups_skipped=0, reply_saved=0, runs_out_on=None,
        total_runs_out_on=None, plan_balance=0, topup_balance=0, spent_today={}, daily_caps={},
    )  # fmt: skip


def chart_html(chart) -> str:
    return render_to_string("billing/settings_billing.html#chart", {"chart": chart})


DAY = re.compile(r'<g class="day( future)?" role="img" tabindex="(-1|0)" data-day="([\d-]+)" aria-label="([^"]*)">')
BAR_RECT = re.compile(
    r'<rect class="bar" x="([\d.]+)%" y="([\d.]+)%" width="([\d.]+)%" height="([\d.]+)%" fill="(#[0-9A-Fa-f]{6})">'
    r"<title>(\w{3} \d\d?) · ([^:]+): ([\d,.]+) credits</title></rect>"
)


def test_every_day_of_the_period_has_a_slot_of_its_own_used_or_not():
    chart = usage_of({NOV_1: {"a": credits(10)}, date(2026, 11, 20): {"a": credits(5)}}, today=date(2026, 11, 20))
    chart = usage_chart(chart)
    assert [d.day for d in chart.days] == [NOV_1 + timedelta(days=n) for n in range(31)]
    # The slots tile the plot from edge to edge, each day its own, the same width to a hundredth of a per cent.
    edges = [(round(d.x * 100), round((d.x + d.width) * 100)) for d in chart.days]
    assert edges[0][0] == 0 and edges[-1][1] == 100 * 100
    assert all(right == left for (_, right), (left, _) in itertools.pairwise(edges))
    assert {round(d.width * 100) for d in chart.days} <= {322, 323}  # 10,000 / 31
    # Named a week apart from the period's first day; the days after today are still to come.
    assert [d.day.day for d in chart.days if d.labelled] == [1, 8, 15, 22, 29]
    assert [d.day for d in chart.days if d.future] == [date(2026, 11, 21) + timedelta(days=n) for n in range(11)]
    html = chart_html(chart)
    days = DAY.findall(html)
    assert len(days) == 31 == html.count('<rect class="slot"')
    assert days[0][2:] == ("2026-11-01", "Nov 1: 10 credits (A 10)")
    assert days[1][2:] == ("2026-11-02", "Nov 2: no credits used")
    assert days[30] == (" future", "-1", "2026-12-01", "Dec 1: still to come")
    # Keyboard focus enters on the last day with usage; the arrow keys move on from there.
    assert [tabindex for _, tabindex, *_ in days].index("0") == 19 == chart.focus
    labels = re.search(r'<div class="chart-days" aria-hidden="true">(.*?)</div>', html).group(1)
    assert re.findall(r"<span[^>]*>([^<]*)</span>", labels) == ["Nov 1", "Nov 8", "Nov 15", "Nov 22", "Nov 29"]
    assert labels.count("<i ") == 31  # a tick for every day


def test_one_day_of_usage_is_one_narrow_bar_not_the_whole_width():
    chart = usage_chart(usage_of({NOV_1: {"a": credits(3)}}))
    html = chart_html(chart)
    bars = BAR_RECT.findall(html)
    assert len(bars) == 1 and len(DAY.findall(html)) == 31
    x, y, width, height, _, day, tool, amount = bars[0]
    slot = chart.days[0].width
    assert float(width) == chart.bar_width == pytest.approx(slot * BAR / 100, abs=0.01) and float(width) < 2.3
    assert float(x) == pytest.approx((slot - float(width)) / 2, abs=0.01)  # centred in the day's slot
    assert (y, height, day, tool, amount) == ("0.0", "100.0", "Nov 1", "A", "3")  # reaches the scale's top of 3


@pytest.mark.parametrize(
    ("peak", "step"),
    [
        (credits("19179.4"), credits(5_000)),
        (credits(20_000), credits(5_000)),
        (credits(20_001), credits(5_000)),
        (credits(25_001), credits(10_000)),
        (credits(9_000), credits(2_000)),
        (credits(11_000), credits(2_500)),
        (credits(303_585), credits(100_000)),
        (credits("0.7"), credits("0.2")),
        (credits(1), credits("0.2")),
        (credits("1.1"), credits("0.25")),
        (1, 1),
    ],
)
def test_the_credit_scale_steps_are_round(peak, step):
    assert nice_step(peak) == step


def nice_numbers(below: int) -> list[int]:
    """1, 2, 2.5 and 5 times each power of ten millicredits, under ``below``."""
    found, power = [], 1
    while power < below:
        found += [s for s in (power, 2 * power, 25 * power // 10, 5 * power) if s < below]
        power *= 10
    return found


@given(st.integers(min_value=1, max_value=10**15))
def test_the_scale_reaches_the_busiest_day_in_the_fewest_round_steps(peak):
    step = nice_step(peak)
    assert str(step).rstrip("0") in {"1", "2", "25", "5"}  # 1, 2, 2.5 or 5 times a power of ten
    top = -(-peak // step) * step
    assert peak <= top < peak + step and top // step <= TICK_INTERVALS
    assert all(smaller * TICK_INTERVALS < peak for smaller in nice_numbers(step))  # none smaller would do


def test_the_scale_is_labelled_in_credits_from_0_to_its_top():
    chart = usage_chart(usage_of({NOV_1: {"a": credits("12000.5")}, date(2026, 11, 2): {"a": credits("19179.4")}}))
    assert chart.ticks == [(0, 100.0), (5_000_000, 75.0), (10_000_000, 50.0), (15_000_000, 25.0), (20_000_000, 0.0)]
    assert (chart.peak, chart.peak_day) == (credits("19179.4"), date(2026, 11, 2))
    html = chart_html(chart)
    scale = re.search(r'<div class="chart-scale" aria-hidden="true">(.*?)</div>', html).group(1)
    assert re.findall(r'<span data-top="([\d.]+)">([^<]*)</span>', scale) == [
        ("100.0", "0"), ("75.0", "5,000"), ("50.0", "10,000"), ("25.0", "15,000"), ("0.0", "20,000")
    ]  # fmt: skip
    assert html.count('<line class="grid"') == 5
    assert "The busiest day, Nov 2, used 19,179.4 credits." in html
    small = usage_chart(usage_of({NOV_1: {"a": 700}}))
    assert [format_credits(value) for value, _ in small.ticks] == ["0", "0.2", "0.4", "0.6", "0.8"]


def test_each_day_stacks_its_tools_in_the_legends_order_to_its_share_of_the_scale():
    day = [NOV_1 + timedelta(days=n) for n in range(4)]
    # Seven tools: the five busiest have their own colours, the other two share "Other tools".
    by_day = {
        day[0]: {"a": 30_000, "b": 10_000, "f": 2_000, "g": 1_000},  # 43 credits
        day[1]: {"a": 40_000, "c": 50_000, "d": 40_000, "e": 30_000, "b": 50_000},  # 210: the busiest
        day[2]: {},
        day[3]: {"d": 700},  # 0.7 credits: a sliver, still titled
    }
    usage = usage_of(by_day, ids={key: n for n, key in enumerate("abcdefg", start=1)})
    chart = usage_chart(usage)
    assert chart.legend == [("A", tool_style(1)), ("B", tool_style(2)), ("C", tool_style(3)), ("D", tool_style(4)),
                            ("E", tool_style(5)), (OTHER, OTHER_STYLE)]  # fmt: skip
    html = chart_html(chart)
    legend = re.search(r'<ul class="legend" data-testid="chart-legend">(.*?)</ul>', html, re.S).group(1)
    assert re.findall(r"<span>([^<]*)</span>", legend) == ["A", "B", "C", "D", "E", OTHER]
    assert re.findall(r'<rect width="12" height="12" fill="(#\w+)"/>', legend) == [
        *(PALETTE[n] for n in range(5)),
        OTHER_STYLE.color,
    ]
    bars = BAR_RECT.findall(html)
    columns: dict[str, list] = {}
    for bar in bars:
        columns.setdefault(bar[5], []).append(bar)
    assert list(columns) == ["Nov 1", "Nov 2", "Nov 4"]
    scale = chart.ticks[-1][0]
    assert scale == credits(250)  # 210 credits: five steps of 50
    for label, column in columns.items():
        total = sum(by_day[day[int(label[-1]) - 1]].values())
        below = 100 * 100
        for _, y, _, height, *_ in column:  # bottom up, edge to edge
            y, height = round(float(y) * 100), round(float(height) * 100)
            assert height >= 0 and y + height == below
            below = y
        assert 100 * 100 - below == total * 10_000 // scale
    assert [(fill, name, amount) for *_, fill, _, name, amount in columns["Nov 1"]] == [
        (PALETTE[0], "A", "30"), (PALETTE[1], "B", "10"), (OTHER_STYLE.color, OTHER, "3")
    ]  # fmt: skip
    assert [name for *_, name, _ in columns["Nov 2"]] == ["A", "B", "C", "D", "E"]
    assert [(name, amount) for *_, name, amount in columns["Nov 4"]] == [("D", "0.7")]
    assert 'aria-label="Nov 1: 43 credits (A 30; B 10; Other tools 3)"' in html
    # The By tool table's swatches: each drawn tool its own, the folded ones "Other tools".
    assert [(tool.key, style) for tool, style in chart.tool_rows] == [
        ("a", tool_style(1)), ("b", tool_style(2)), ("c", tool_style(3)), ("d", tool_style(4)), ("e", tool_style(5)),
        ("f", OTHER_STYLE), ("g", OTHER_STYLE),
    ]  # fmt: skip


def test_a_tool_keeps_its_colour_whatever_its_rank_in_the_period():
    haiku, gmail, opus = 1, 8, 3
    ids = {"haiku": haiku, "gmail": gmail, "opus": opus}
    first = usage_chart(usage_of({NOV_1: {"haiku": credits(50), "gmail": credits(10)}}, ids=ids))
    later = usage_chart(usage_of({NOV_1: {"opus": credits(90), "gmail": credits(60), "haiku": credits(1)}}, ids=ids))
    assert [label for label, _ in first.legend] == ["Haiku", "Gmail"]
    assert [label for label, _ in later.legend] == ["Opus", "Gmail", "Haiku"]
    assert dict(first.legend)["Haiku"] == dict(later.legend)["Haiku"] == tool_style(haiku)
    assert dict(first.legend)["Gmail"] == dict(later.legend)["Gmail"] == tool_style(gmail)
    # Drawn with the same colour too.
    for chart in (first, later):
        fills = {name: fill for *_, fill, _, name, _ in BAR_RECT.findall(chart_html(chart))}
        assert fills["Haiku"] == tool_style(haiku).color and fills["Gmail"] == tool_style(gmail).color


def test_the_first_21_actions_each_look_different_and_marks_are_drawn_over_the_colour():
    styles = [tool_style(n) for n in range(1, 22)]
    assert len(set(styles)) == 21 and OTHER_STYLE not in styles
    assert {style.color for style in styles} == set(PALETTE) and {style.mark for style in styles} == set(MARKS)
    assert tool_style(22) == tool_style(1)  # and then round again
    striped = usage_of({NOV_1: {"t": credits(1)}}, ids={"t": 8})
    html = chart_html(usage_chart(striped))
    assert tool_style(8) == (PALETTE[0], "stripes")
    assert f'fill="{PALETTE[0]}"><title>Nov 1 · T: 1 credits</title></rect><rect class="mark"' in html
    assert 'fill="url(#chart-stripes)"' in html
    marks = render_to_string("billing/settings_billing.html#chart-marks")
    assert all(f'<pattern id="chart-{mark}"' in marks for mark in MARKS if mark)


@pytest.mark.django_db
def test_every_action_in_the_catalog_has_a_look_of_its_own():
    from billing.models import Action

    ids = list(Action.objects.values_list("pk", flat=True))
    assert len(ids) >= 12 and len({tool_style(pk) for pk in ids}) == len(ids)


def test_the_titles_name_each_day_and_amount_as_the_rest_of_the_page_does():
    import random

    rng = random.Random(7)
    start = date(2026, 1, 1)
    days = [start + timedelta(days=n) for n in range(365)]  # every month's name
    amounts = [rng.choice([1, 49, 50, 51, 949, 950, 999_950, 10**9 + 1]) * rng.randint(1, 3) for _ in days]
    usage = usage_of(dict(zip(days, ({"a": amount} for amount in amounts), strict=True)), start=start, end=days[-1])
    titles = [(day, amount) for *_, day, _, amount in BAR_RECT.findall(chart_html(usage_chart(usage)))]
    expected = [(f"{day:%b} {day.day}", format_credits(amount)) for day, amount in zip(days, amounts, strict=True)]
    assert titles == expected


def test_a_period_without_usage_has_no_peak_and_draws_no_bars():
    chart = usage_chart(usage_of({}, today=NOV_1))
    assert (chart.peak, chart.peak_day, chart.legend, chart.tool_rows) == (0, None, [], [])
    assert len(chart.days) == 31 and not any(d.segments for d in chart.days)
