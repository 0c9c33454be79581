"""The usage chart's geometry: server-rendered SVG, no chart library, no CDN.

This module computes numbers only (where each bar goes, its colour, what it stands for); the
``<rect>`` elements are written by the usage region's ``chart`` partial
(templates/billing/settings_billing.html).

Coordinates are whole numbers in a 7200 × 2200 box (tenths of the 720 × 220 the chart is laid
out in): a tenth of a unit is well under a pixel at any size the page shows, and integer
arithmetic stacks each day's segments edge to edge with no gap or overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from billing.selectors import UsageSummary

UNIT = 10  # coordinates per layout unit
WIDTH, HEIGHT = 720 * UNIT, 220 * UNIT
HEADROOM = 10 * UNIT  # above the busiest day's bar
TOP_TOOLS = 5
PALETTE = ["#4338ca", "#0e7490", "#b45309", "#be185d", "#15803d", "#6b7280"]
OTHER = "Other tools"


class Segment(NamedTuple):
    """One tool's part of a day's column: its top edge and height, colour, and the credits it stands for.

    A named tuple: the template unpacks it (``{% for y, height, color, tool, credits in … %}``), a
    context lookup per value instead of an attribute lookup, for a month's hundred-odd segments.
    """

    y: int
    height: int
    color: str
    tool: str
    credits: int  # millicredits


@dataclass(frozen=True)
class Column:
    """A day that used credits: where its bar stands and the segments stacked in it, bottom up."""

    day: date
    x: int
    width: int
    segments: list[Segment]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    columns: list[Column]  # the days with usage only
    legend: list[tuple[str, str]]  # (tool, colour)
    peak: int  # the busiest day's millicredits, 0 when nothing was used
    first_day: date | None
    last_day: date | None


def usage_chart(usage: UsageSummary) -> Chart:
    """Credits by day, stacked by tool: the period's top tools, the rest as "Other tools".

    Each day is a column whose height is its credits against the busiest day's, which reaches
    ``HEADROOM`` below the top; within it the top tools stack from the bottom in their order,
    "Other tools" last. A tool that spent nothing that day has no segment.
    """
    top = [tool.key for tool in usage.tools[:TOP_TOOLS]]
    labels = {tool.key: tool.label for tool in usage.tools}
    colors = {key: PALETTE[n] for n, key in enumerate(top)}
    series = [(key, colors[key], labels[key]) for key in top]
    totals = [sum(usage.by_day.get(day, {}).values()) for day in usage.days]
    peak = max(totals, default=0) or 1
    plot = HEIGHT - HEADROOM
    slot = WIDTH / max(len(usage.days), 1)
    width = round(slot * 0.7)
    columns = []
    for n, (day, total) in enumerate(zip(usage.days, totals, strict=True)):
        if not total:
            continue
        spent = usage.by_day[day]
        stack = [(spent.get(key, 0), color, name) for key, color, name in series]
        stack.append((total - sum(amount for amount, _, _ in stack), PALETTE[-1], OTHER))
        segments = []
        below = HEIGHT  # the top edge of the segment under this one
        running = 0
        for amount, color, name in stack:
            if not amount:
                continue
            running += amount
            y = HEIGHT - running * plot // peak
            segments.append(Segment(y, below - y, color, name, amount))
            below = y
        columns.append(Column(day, round(n * slot + slot * 0.15), width, segments))
    legend = [(labels[key], colors[key]) for key in top]
    if any(tool.key not in colors for tool in usage.tools):
        legend.append((OTHER, PALETTE[-1]))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        columns=columns,
        legend=legend,
        peak=peak if any(totals) else 0,
        first_day=usage.days[0] if usage.days else None,
        last_day=usage.days[-1] if usage.days else None,
    )
