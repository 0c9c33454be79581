"""The plan advisor's region in a browser: every figure on screen at desktop and phone widths, and its button
starting the existing purchase flow."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billing.credits import credits
from billing.models import Action, DailyUsage, Membership
from tests.browser.conftest import PHONE, SCREENSHOTS_DIR
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DESKTOP = {"width": 1366, "height": 900}

# Anything in the region that reaches past its edges, and a table wider than its box (nothing here scrolls).
OVERFLOWING = """() => {
  const box = document.querySelector("#advisor").getBoundingClientRect();
  const name = (el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} "${el.innerText.slice(0, 30)}"`;
  // A stacked table's header row is clipped out of sight on a phone (each cell names its field instead).
  const clipped = (el) => el.closest("thead") && getComputedStyle(el.closest("thead")).position === "absolute";
  const outside = [...document.querySelectorAll("#advisor *")].filter((el) => {
    if (clipped(el)) return false;
    const r = el.getBoundingClientRect();
    return r.width && (r.right > box.right + 1 || r.left < box.left - 1);
  }).map((el) => `${name(el)} reaches ${Math.round(el.getBoundingClientRect().right)} of ${Math.round(box.right)}`);
  const wide = [...document.querySelectorAll("#advisor table")]
    .filter((table) => table.scrollWidth > table.parentElement.clientWidth + 1)
    .map((table) => `${name(table)}: ${table.scrollWidth} px in ${table.parentElement.clientWidth} px`);
  return [...outside, ...wide];
}"""


def workspace_using(per_day: int):
    """A Max workspace of an owner and a member, with 30 days of day counters before today."""
    owner = UserFactory(email="owner@example.test")
    workspace = WorkspaceFactory(owner=owner, name="Acme Growth", plan_key="max")
    member = UserFactory(email="member@example.test")
    Membership.objects.create(workspace=workspace, user=member, role="member")
    today = timezone.now().astimezone(workspace.zone).date()
    action = Action.objects.get(key="crustdata-enrich")
    DailyUsage.objects.bulk_create(
        DailyUsage(workspace=workspace, day=today - timedelta(days=n), specialist_id="sourcing", action=action,
                   credits=credits(per_day), list_credits=credits(per_day), quantity=1, events=1)
        for n in range(1, 31)
    )  # fmt: skip
    return owner, member


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_advice_and_its_table_fit_the_screen_and_the_button_starts_a_checkout(browsers, viewport):
    owner, member = workspace_using(200_000 // 30)
    page = browsers.page(viewport=viewport, user=owner)
    page.goto("/settings/billing/#advisor")
    region = page.locator("#advisor")
    expect(region.get_by_test_id("advice")).to_contain_text("Free + 2 × 100K packs at $30 a month")
    for plan in ("free", "pro", "max", "ultra"):
        expect(region.locator(f'tr[data-plan="{plan}"]')).to_be_visible()
    expect(region.locator('tr[data-plan="pro"]')).to_contain_text("$67")
    assert page.evaluate(OVERFLOWING) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOTS_DIR.mkdir(exist_ok=True)
        name = "desktop" if viewport is DESKTOP else "phone"
        region.screenshot(path=SCREENSHOTS_DIR / f"advisor-{name}.png")
        page.screenshot(path=SCREENSHOTS_DIR / f"advisor-page-{name}.png", full_page=True)
    # The pack's button is the top-up flow's: with no Stripe key here, it says payments are not configured.
    region.get_by_role("button", name="Buy 100K · $15").click()
    expect(page.locator("main h1")).to_have_text("Payments are not configured yet")
    expect(page.locator("main")).to_contain_text("You chose the 100K credits top-up pack ($15).")
    # A member reads the same advice, without the buttons.
    as_member = browsers.page(viewport=viewport, user=member)
    as_member.goto("/settings/billing/")
    expect(as_member.locator("#advisor").get_by_test_id("advice")).to_contain_text("Free + 2 × 100K packs")
    expect(as_member.locator("#advisor button")).to_have_count(0)
