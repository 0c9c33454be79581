"""The usage chart as a customer reads it, at 1366 and 390 px: axes, legend, a day's figures, each tool's colour."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from billing.charts import OTHER, tool_style
from billing.models import Action, Wallet
from billing.services import charge
from tests.browser.conftest import PHONE
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DESKTOP = {"width": 1366, "height": 900}
GMAIL = "Cold email send via Gmail (Composio)"

# Each tool's colour as drawn: the bar (its fill and title), the legend's swatch and the By tool table's swatch.
COLOURS = """() => {
    const colours = {bars: {}, legend: {}, table: {}};
    for (const bar of document.querySelectorAll(".chart .bar")) {
        const tool = bar.querySelector("title").textContent.replace(/^[^·]+· /, "").replace(/: [^:]+$/, "");
        colours.bars[tool] = getComputedStyle(bar).fill;
    }
    for (const item of document.querySelectorAll(".chart .legend li")) {
        colours.legend[item.textContent.trim()] = getComputedStyle(item.querySelector(".swatch rect")).fill;
    }
    for (const row of document.querySelectorAll("#usage table tbody tr")) {
        const swatch = row.querySelector(".swatch rect");
        if (swatch) colours.table[row.cells[0].textContent.trim()] = getComputedStyle(swatch).fill;
    }
    return colours;
}"""


def rgb(hex_colour: str) -> str:
    """ "#0072B2" as getComputedStyle writes it: "rgb(0, 114, 178)"."""
    red, green, blue = (int(hex_colour[n : n + 2], 16) for n in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366", "390"])
def test_the_chart_has_a_slot_per_day_axes_a_legend_day_figures_and_one_colour_per_tool(browsers, viewport):
    now = timezone.now()
    owner = UserFactory(email="owner@example.test")
    with time_machine.travel(now - timedelta(days=9), tick=False):  # the period began nine days ago
        workspace = WorkspaceFactory(owner=owner, name="Acme", plan_key="max")
        charge(workspace=workspace, action="claude-haiku", quantity=30_000, idempotency_key="h1")  # 3,000 credits
        charge(workspace=workspace, action="gmail-send", idempotency_key="g1")  # 200
    with time_machine.travel(now - timedelta(days=4), tick=False):
        charge(workspace=workspace, action="claude-haiku", quantity=12_345, idempotency_key="h2")  # 1,234.5
    wallet = Wallet.objects.get(workspace=workspace)
    days_in_period = (wallet.period_end.date() - wallet.period_start.date()).days + 1
    haiku = tool_style(Action.objects.get(key="claude-haiku").pk).color
    gmail = tool_style(Action.objects.get(key="gmail-send").pk).color

    page = browsers.page(viewport=viewport, user=owner)
    page.goto("/settings/billing/")
    chart = page.locator("#usage figure.chart")
    expect(chart).to_be_visible()
    # An accessible name, and the text alternative it points to.
    assert "Credits used each day" in chart.locator("figcaption").inner_text()
    assert page.locator("#usage svg.chart-plot").get_attribute("aria-label").startswith("Credits by day, ")

    # A slot for every day of the period, used or not: two days of usage are two narrow bars.
    days = chart.locator(".chart-plot .day")
    expect(days).to_have_count(days_in_period)
    slot_widths = days.evaluate_all("(days) => days.map((d) => d.querySelector('.slot').getBoundingClientRect().width)")
    plot_width = chart.locator(".chart-plot").bounding_box()["width"]
    assert max(slot_widths) - min(slot_widths) < 1 and sum(slot_widths) == pytest.approx(plot_width, abs=2)
    bars = chart.locator(".chart-plot .bar")
    expect(bars).to_have_count(3)  # Haiku and Gmail on the first day, Haiku on the sixth
    assert max(box["width"] for box in bars.evaluate_all("(b) => b.map((e) => e.getBoundingClientRect().toJSON())")) < (
        plot_width / days_in_period
    )

    # Axes: day names below (a week apart), a credit scale in round steps beside, all on screen.
    day_labels = chart.locator(".chart-days span")
    assert day_labels.count() >= 4
    first_day = wallet.period_start.date()
    assert day_labels.first.inner_text() == f"{first_day:%b} {first_day.day}"
    assert chart.locator(".chart-scale span").all_inner_texts() == ["0", "1,000", "2,000", "3,000", "4,000"]
    for label in (*day_labels.all(), *chart.locator(".chart-scale span").all()):
        expect(label).to_be_visible()
        box = label.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    assert chart.evaluate("(figure) => figure.scrollWidth <= figure.clientWidth")

    # The legend names the tools in the order they stack, bottom first.
    assert chart.locator(".legend li").all_inner_texts() == ["Claude Haiku", GMAIL]

    # A day's figures: each segment's title for the pointer, the day in words on focus and on hover.
    titles = chart.locator(".bar title").all_text_contents()
    assert f"{first_day:%b} {first_day.day} · Claude Haiku: 3,000 credits" in titles
    readout = chart.locator("[data-chart-readout]")
    focused = days.nth(5)  # keyboard focus enters on the last day with usage
    assert focused.get_attribute("tabindex") == "0" and days.nth(0).get_attribute("tabindex") == "-1"
    focused.focus()
    sixth = first_day + timedelta(days=5)
    expect(readout).to_have_text(f"{sixth:%b} {sixth.day}: 1,234.5 credits (Claude Haiku 1,234.5)")
    page.keyboard.press("ArrowLeft")
    expect(days.nth(4)).to_be_focused()
    expect(readout).to_have_text(f"{sixth - timedelta(days=1):%b} {(sixth - timedelta(days=1)).day}: no credits used")
    stroke = days.nth(4).locator(".slot").evaluate("(slot) => getComputedStyle(slot).strokeWidth")
    assert stroke == "2px"  # the focused day is outlined
    page.keyboard.press("Home")
    expect(days.nth(0)).to_be_focused()
    expect(readout).to_have_text(f"{first_day:%b} {first_day.day}: 3,200 credits (Claude Haiku 3,000; {GMAIL} 200)")
    days.nth(days_in_period - 1).hover()
    expect(readout).to_contain_text("still to come")

    # One colour per tool: the bar, the legend and the table agree, and they are the catalog action's.
    colours = page.evaluate(COLOURS)
    assert colours["bars"]["Claude Haiku"] == colours["legend"]["Claude Haiku"] == colours["table"]["Claude Haiku"]
    assert colours["bars"]["Claude Haiku"] == rgb(haiku) and colours["legend"][GMAIL] == rgb(gmail)

    # Another view: Opus becomes the busiest tool, so Haiku now stacks second, in the same colour.
    charge(workspace=workspace, action="claude-opus", quantity=10_000, idempotency_key="o1")  # 15,000 credits today
    page.reload()
    assert chart.locator(".legend li").all_inner_texts()[:2] == ["Claude Opus", "Claude Haiku"]
    again = page.evaluate(COLOURS)
    assert again["legend"]["Claude Haiku"] == again["bars"]["Claude Haiku"] == colours["bars"]["Claude Haiku"]
    assert again["legend"]["Claude Opus"] != again["legend"]["Claude Haiku"]
    assert OTHER not in again["legend"]
