"""The usage chart as server-rendered SVG: no chart library, no CDN.

The bars are drawn here, in Python, and reach the template as one piece of markup: a month of
days stacked by tool is over a hundred ``<rect>`` elements, which cost far more to render one
template variable at a time. Everything in that markup is a number formatted here, a colour
from ``PALETTE`` or a tool's name escaped here, so it is marked safe as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.credits import format_credits
from billing.selectors import UsageSummary

WIDTH, HEIGHT, TOP_TOOLS = 720, 220, 5
PALETTE = ["#4338ca", "#0e7490", "#b45309", "#be185d", "#15803d", "#6b7280"]
OTHER = "Other tools"


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


def _num(value: float) -> str:
    """``value`` to two decimals, as ``repr(round(value, 2))`` writes it ("24.0", "5.1"), at a third of the cost."""
    text = f"{value:.2f}".rstrip("0")
    return f"{text}0" if text.endswith(".") else text


def usage_chart(usage: UsageSummary) -> Chart:
    """Credits by day, stacked by tool: the period's top tools, the rest as "Other tools"."""
    top = [tool.key for tool in usage.tools[:TOP_TOOLS]]
    labels = {tool.key: tool.label for tool in usage.tools}
    colors = {key: PALETTE[n] for n, key in enumerate(top)}
    series = [(key, colors[key], escape(labels[key])) for key in top]
    totals = [sum(usage.by_day.get(day, {}).values()) for day in usage.days]
    peak = max(totals, default=0) or 1
    slot = WIDTH / max(len(usage.days), 1)
    width = _num(slot * 0.7)
    bars = []
    for n, (day, total) in enumerate(zip(usage.days, totals, strict=True)):
        spent = usage.by_day.get(day, {})
        stack = [(spent.get(key, 0), color, name) for key, color, name in series]
        stack.append((total - sum(amount for amount, _, _ in stack), PALETTE[-1], OTHER))
        x, y, label = _num(n * slot + slot * 0.15), HEIGHT, f"{day:%b %d}"
        for amount, color, name in stack:
            if not amount:
                continue
            height = amount / peak * (HEIGHT - 10)
            y -= height
            bars.append(
                f'<rect x="{x}" y="{_num(y)}" width="{width}" height="{_num(height)}" fill="{color}">'
                f"<title>{label} · {name}: {format_credits(amount, places=1)} credits</title></rect>"
            )
    legend = [(labels[key], colors[key]) for key in top]
    if any(tool.key not in colors for tool in usage.tools):
        legend.append((OTHER, PALETTE[-1]))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=mark_safe("".join(bars)),  # numbers, palette colours and names escaped above
        bar_count=len(bars),
        legend=legend,
        max_label=format_credits(peak if any(totals) else 0, places=0),
        first_day=f"{usage.days[0]:%b %d}" if usage.days else "",
        last_day=f"{usage.days[-1]:%b %d}" if usage.days else "",
    )
