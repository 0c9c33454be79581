"""The usage chart as server-rendered SVG: no chart library, no CDN.

The bars are drawn here, in Python, and reach the template as one piece of markup: a month of
days stacked by tool is over a hundred ``<rect>`` elements, which cost far more to render one
template variable at a time. Everything in that markup is an integer, a colour from
``PALETTE``, a day written here or a tool's name escaped here, so it is marked safe as a whole.

Coordinates are whole numbers in a 7200 × 2200 box (tenths of the 720 × 220 the chart is laid
out in): a tenth of a unit is well under a pixel at any size the page shows, integers are
written several times faster than rounded floats (this was a tenth of the billing page's
time), and integer arithmetic stacks each day's segments edge to edge with no gap or overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.credits import format_credits
from billing.selectors import UsageSummary

UNIT = 10  # coordinates per layout unit
WIDTH, HEIGHT = 720 * UNIT, 220 * UNIT
HEADROOM = 10 * UNIT  # above the busiest day's bar
TOP_TOOLS = 5
PALETTE = ["#4338ca", "#0e7490", "#b45309", "#be185d", "#15803d", "#6b7280"]
OTHER = "Other tools"
# "Nov 05": what f"{day:%b %d}" writes in the C locale, without strftime's cost for every day.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _label(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.day:02d}"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: SafeString  # the ``<rect>`` elements, each titled with its day, tool and credits
    bar_count: int
    legend: list[tuple[str, str]]  # (tool, colour)
    max_label: str
    first_day: str
    last_day: str


def usage_chart(usage: UsageSummary) -> Chart:
    """Credits by day, stacked by tool: the period's top tools, the rest as "Other tools".

    Each day is a column whose height is its credits against the busiest day's, which reaches
    ``HEADROOM`` below the top; within it the top tools stack from the bottom in their order,
    "Other tools" last. A tool that spent nothing that day has no segment.
    """
    top = [tool.key for tool in usage.tools[:TOP_TOOLS]]
    labels = {tool.key: tool.label for tool in usage.tools}
    colors = {key: PALETTE[n] for n, key in enumerate(top)}
    series = [(key, colors[key], escape(labels[key])) for key in top]
    totals = [sum(usage.by_day.get(day, {}).values()) for day in usage.days]
    peak = max(totals, default=0) or 1
    plot = HEIGHT - HEADROOM
    slot = WIDTH / max(len(usage.days), 1)
    width = round(slot * 0.7)
    bars = []
    for n, (day, total) in enumerate(zip(usage.days, totals, strict=True)):
        if not total:
            continue
        spent = usage.by_day[day]
        stack = [(spent.get(key, 0), color, name) for key, color, name in series]
        stack.append((total - sum(amount for amount, _, _ in stack), PALETTE[-1], OTHER))
        x, label = round(n * slot + slot * 0.15), _label(day)
        below = HEIGHT  # the top edge of the segment under this one
        running = 0
        for amount, color, name in stack:
            if not amount:
                continue
            running += amount
            y = HEIGHT - running * plot // peak
            # format_credits(amount, places=1) for a positive amount, inline: a tenth of the cost per bar.
            whole, tenth = divmod((amount + 50) // 100, 10)
            bars.append(
                f'<rect x="{x}" y="{y}" width="{width}" height="{below - y}" fill="{color}">'
                f"<title>{label} · {name}: {whole:,}{f'.{tenth}' if tenth else ''} credits</title></rect>"
            )
            below = y
    legend = [(labels[key], colors[key]) for key in top]
    if any(tool.key not in colors for tool in usage.tools):
        legend.append((OTHER, PALETTE[-1]))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=mark_safe("".join(bars)),  # integers, palette colours, days and names escaped above
        bar_count=len(bars),
        legend=legend,
        max_label=format_credits(peak if any(totals) else 0, places=0),
        first_day=_label(usage.days[0]) if usage.days else "",
        last_day=_label(usage.days[-1]) if usage.days else "",
    )
