"""The usage chart as server-rendered SVG geometry: no chart library, no CDN."""

from __future__ import annotations

from dataclasses import dataclass

from billing.credits import format_credits
from billing.selectors import UsageSummary

WIDTH, HEIGHT, TOP_TOOLS = 720, 220, 5
PALETTE = ["#4338ca", "#0e7490", "#b45309", "#be185d", "#15803d", "#6b7280"]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    legend: list[tuple[str, str]]
    max_label: str
    first_day: str
    last_day: str


def usage_chart(usage: UsageSummary) -> Chart:
    """Credits by day, stacked by tool: the period's top tools, the rest as "Other tools"."""
    top = [tool.key for tool in usage.tools[:TOP_TOOLS]]
    labels = {tool.key: tool.label for tool in usage.tools}
    colors = {key: PALETTE[n] for n, key in enumerate(top)}
    totals = [sum(usage.by_day.get(day, {}).values()) for day in usage.days]
    peak = max(totals, default=0) or 1
    slot = WIDTH / max(len(usage.days), 1)
    bars = []
    for n, day in enumerate(usage.days):
        spent = usage.by_day.get(day, {})
        stack = [(key, spent.get(key, 0)) for key in top]
        stack.append(("_other", sum(v for k, v in spent.items() if k not in colors)))
        y = HEIGHT
        for key, amount in stack:
            if not amount:
                continue
            height = amount / peak * (HEIGHT - 10)
            y -= height
            name = labels.get(key, "Other tools")
            bars.append(
                Bar(
                    x=round(n * slot + slot * 0.15, 2),
                    y=round(y, 2),
                    width=round(slot * 0.7, 2),
                    height=round(height, 2),
                    color=colors.get(key, PALETTE[-1]),
                    title=f"{day:%b %d} · {name}: {format_credits(amount, places=1)} credits",
                )
            )
    legend = [(labels[key], colors[key]) for key in top]
    if any(tool.key not in colors for tool in usage.tools):
        legend.append(("Other tools", PALETTE[-1]))
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=bars,
        legend=legend,
        max_label=format_credits(peak if any(totals) else 0, places=0),
        first_day=f"{usage.days[0]:%b %d}" if usage.days else "",
        last_day=f"{usage.days[-1]:%b %d}" if usage.days else "",
    )
