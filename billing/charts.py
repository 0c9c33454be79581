"""The usage chart's geometry: server-rendered SVG, no chart library, no CDN.

This module computes numbers only (where each day's slot and bar go, the credit scale's ticks,
each tool's colour); the markup is the usage region's ``chart`` partial
(templates/billing/settings_billing.html).

Positions are percentages of the plot: the SVG draws its bars and grid lines in them and the
HTML labels around it (days below, credits beside) are placed by the same numbers, so they line
up at any width without stretching text or the bars' patterns. They are worked out in
hundredths of a per cent, as integers, so a day's segments stack edge to edge with no gap or
overlap, and handed over as percentages with at most two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from billing.selectors import ToolUsage, UsageSummary

FULL = 100 * 100  # the plot's width and height, in hundredths of a per cent
BAR = 70  # a bar's width, in per cent of its day's slot
TOP_TOOLS = 5
TICK_INTERVALS = 5  # the credit scale has at most this many steps above 0

# Okabe & Ito's colour-blind-safe palette (Color Universal Design), without its yellow, which
# does not show on the white plot. A tool keeps its colour everywhere: it is taken from its
# catalog action (``tool_style``), never from where the tool ranks this period.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000")
# Beyond the palette's seven, the colours come round again under white stripes, then dots: 21
# tools before two look alike (the catalog has a dozen). Marks also tell apart neighbours that
# some readers see as one colour.
MARKS = ("", "stripes", "dots")


class ToolStyle(NamedTuple):
    """How one tool is drawn: its colour, and a mark over it ("" none, "stripes" or "dots")."""

    color: str
    mark: str


OTHER = "Other tools"
OTHER_STYLE = ToolStyle("#6b7280", "")  # grey: the tools past the busiest few, taken together


def tool_style(action_id: int) -> ToolStyle:
    """The colour and mark of the catalog action ``action_id``, the same on every page and period.

    Derived from the action's id, which never changes and is handed out in catalog order, so
    the catalog's first 21 actions each have their own (the help page's dozen all differ) and a
    new action takes the next one without moving anyone else's.
    """
    n = max(action_id - 1, 0)
    return ToolStyle(PALETTE[n % len(PALETTE)], MARKS[n // len(PALETTE) % len(MARKS)])


def _percent(units: int) -> float:
    """Hundredths of a per cent as a per cent: 1234 -> 12.34."""
    return units / 100


class Segment(NamedTuple):
    """One tool's part of a day's bar: its top edge and height (per cent), style, name and credits.

    A named tuple: the template unpacks it (``{% for y, height, color, mark, tool, credits in … %}``),
    a context lookup per value instead of an attribute lookup, for a month's hundred-odd segments.
    """

    y: float
    height: float
    color: str
    mark: str
    tool: str
    credits: int  # millicredits


@dataclass(frozen=True)
class Day:
    """A day of the period: its slot on the day axis, and its bar when it used credits."""

    day: date
    x: float  # the slot's left edge, per cent of the plot's width
    width: float  # the slot's width: the slots tile the plot, whatever the number of days
    center: float  # where its tick and label stand
    bar_x: float
    total: int  # millicredits
    segments: list[Segment]  # bottom up, in the legend's order; none on a day without usage
    parts: list[tuple[str, int]]  # (tool, millicredits) in the same order, for the day's description
    labelled: bool  # the day axis names this day
    future: bool  # after today: the period has not got there yet


class Tick(NamedTuple):
    """A step of the credit scale: its value (millicredits) and its height (per cent from the top)."""

    value: int
    y: float


@dataclass(frozen=True)
class Chart:
    days: list[Day]  # every day of the period, used or not, in order
    bar_width: float
    ticks: list[Tick]  # from 0 up to the scale's top
    legend: list[tuple[str, ToolStyle]]  # (tool, style) in the order the bars stack, from the bottom
    tool_rows: list[tuple[ToolUsage, ToolStyle]]  # the By tool table: each tool and how the chart draws it
    peak: int  # the busiest day's millicredits, 0 when nothing was used
    peak_day: date | None
    focus: int  # the day keyboard focus enters the chart on: the last one with usage
    first_day: date
    last_day: date


def nice_step(peak: int, intervals: int = TICK_INTERVALS) -> int:
    """The smallest round step (1, 2, 2.5 or 5 × a power of ten millicredits) reaching ``peak`` in ``intervals``.

    A scale of 0, 5,000, 10,000, 15,000, 20,000 for a busiest day of 19,179 credits; 0.2 credits
    apart for one of 0.7.
    """
    power = 1
    while True:
        for step in (power, 2 * power, 25 * power // 10, 5 * power):
            if step and step * intervals >= peak:
                return step
        power *= 10


def _day_label_every(days: int) -> int:
    """Name a day a week on a month's axis (the period's first day, then every seventh), every day on a short one."""
    if days > 14:
        return 7
    return 2 if days > 7 else 1


def usage_chart(usage: UsageSummary) -> Chart:
    """Credits by day over the whole period, stacked by tool: the period's top tools, the rest as "Other tools".

    Every day from the period's first to its last has a slot of the same width, used or not, so
    one day of usage is one narrow bar and the days still to come show as room left. Bars are
    measured against the credit scale's top, the first round step at or above the busiest day.
    """
    top = usage.tools[:TOP_TOOLS]
    series = [(tool.key, tool_style(tool.action_id), tool.label) for tool in top]
    styles = {key: style for key, style, _ in series}
    folded = len(usage.tools) > len(top)
    legend = [(label, style) for _, style, label in series] + ([(OTHER, OTHER_STYLE)] if folded else [])
    tool_rows = [(tool, styles.get(tool.key, OTHER_STYLE)) for tool in usage.tools]

    count = (usage.end - usage.start).days + 1
    period = [usage.start + timedelta(days=n) for n in range(count)]
    totals = [sum(usage.by_day.get(day, {}).values()) for day in period]
    peak = max(totals, default=0)
    step = nice_step(peak)
    scale = step * max(-(-peak // step), 1)  # the scale's top: whole steps, at least one
    ticks = [Tick(value, _percent(FULL - value * FULL // scale)) for value in range(0, scale + 1, step)]

    slot = FULL / count
    bar = round(slot * BAR / 100)
    every = _day_label_every(count)
    days = []
    for n, (day, total) in enumerate(zip(period, totals, strict=True)):
        spent = usage.by_day.get(day, {})
        parts = [(label, spent.get(key, 0)) for key, _, label in series]
        parts.append((OTHER, total - sum(amount for _, amount in parts)))
        colours = [*(style for _, style, _ in series), OTHER_STYLE]
        segments = []
        below = FULL  # the top edge of the segment under this one
        running = 0
        for (name, amount), style in zip(parts, colours, strict=True):
            if not amount:
                continue
            running += amount
            y = FULL - running * FULL // scale
            segments.append(Segment(_percent(y), _percent(below - y), style.color, style.mark, name, amount))
            below = y
        days.append(
            Day(
                day=day,
                x=_percent(round(n * slot)),
                width=_percent(round((n + 1) * slot) - round(n * slot)),
                center=_percent(round(n * slot + slot / 2)),
                bar_x=_percent(round(n * slot + (slot - bar) / 2)),
                total=total,
                segments=segments,
                parts=[(name, amount) for name, amount in parts if amount],
                labelled=n % every == 0,
                future=day > usage.today,
            )
        )
    used = [n for n, total in enumerate(totals) if total]
    return Chart(
        days=days,
        bar_width=_percent(bar),
        ticks=ticks,
        legend=legend,
        tool_rows=tool_rows,
        peak=peak,
        peak_day=period[totals.index(peak)] if peak else None,
        focus=used[-1] if used else 0,
        first_day=period[0],
        last_day=period[-1],
    )
