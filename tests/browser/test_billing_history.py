"""The billing history in a real browser: a pack bought through the offline Stripe double is listed with its
receipt, and the card it was paid with is on file, on a desktop and on a phone, with nothing sticking out."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from billing.models import Membership, Purchase
from tests.browser.conftest import PHONE, SCREENSHOTS_DIR
from tests.browser.test_payments_flow import double  # noqa: F401  (the fixture: the double, webhooks to the live server)
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WIDE = {"width": 1366, "height": 900}

# Every element of the region inside its parent's box, and the page no wider than the screen. Elements a
# clipped box hides on purpose (the table head kept for screen readers on a phone) are not laid out to be seen.
OVERFLOWS_JS = """() => {
    const region = document.getElementById("history");
    const clipped = (el) => {
        for (let e = el; e && e !== region; e = e.parentElement) {
            const style = getComputedStyle(e);
            if (style.position === "absolute" && style.overflow === "hidden") return true;
        }
        return false;
    };
    const found = [];
    for (const el of region.querySelectorAll("*")) {
        const r = el.getBoundingClientRect();
        if (!r.width || clipped(el)) continue;
        const p = el.parentElement.getBoundingClientRect();
        if (r.left < p.left - 1 || r.right > p.right + 1) {
            const text = (el.innerText || "").trim().slice(0, 30);
            found.push(`${el.tagName.toLowerCase()} "${text}" [${Math.round(r.left)}, ${Math.round(r.right)}]`
                + ` outside [${Math.round(p.left)}, ${Math.round(p.right)}]`);
        }
        if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline") {
            found.push(`${el.tagName.toLowerCase()} scrolls: ${el.scrollWidth}px in ${el.clientWidth}px`);
        }
    }
    const page = document.documentElement;
    if (page.scrollWidth > page.clientWidth) {
        found.push(`the page is ${page.scrollWidth}px wide in ${page.clientWidth}px`);
    }
    return found;
}"""


def shot(page, name: str) -> None:
    """With SCREENSHOTS=1, the region and the whole page as PNGs in screenshots/, for a person to look at."""
    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOTS_DIR.mkdir(exist_ok=True)
        page.locator("#history").screenshot(path=SCREENSHOTS_DIR / f"history-{name}.png")
        page.screenshot(path=SCREENSHOTS_DIR / f"history-{name}-page.png", full_page=True)


def test_a_pack_bought_is_in_the_history_with_its_receipt_and_the_card_on_file(browsers, double):  # noqa: F811
    owner, member = UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Membership.objects.create(workspace=ws, user=member, role="member")
    page = browsers.page(user=owner, viewport=WIDE)
    page.goto("/settings/billing/")
    history = page.locator("#history")
    expect(history).to_contain_text("No payments yet")
    expect(history).to_contain_text("No card on file yet")
    shot(page, "empty-desktop")

    page.get_by_role("button", name="Buy 100K", exact=True).click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(double.url)}/checkout/cs_test_"))
    page.locator("#pay").click()
    expect(page.get_by_text("Payment received: 100,000 credits added")).to_be_visible()
    double.wait_for_deliveries()
    purchase = Purchase.objects.get(workspace=ws)

    for viewport, name in ((WIDE, "desktop"), (PHONE, "phone")):
        page = browsers.page(user=owner, viewport=viewport)
        page.goto("/settings/billing/")
        row = page.locator(f'#history tr[data-purchase="{purchase.pk}"]')
        for text in ("100K credits top-up", "$15", "Paid"):
            expect(row.get_by_text(text, exact=True)).to_be_visible()
        expect(row.locator("time")).to_be_visible()
        receipt = row.get_by_role("link", name="Receipt")
        expect(receipt).to_be_visible()
        expect(receipt).to_have_attribute("href", re.compile(rf"^{re.escape(double.url)}/receipts/ch_"))
        expect(page.get_by_test_id("payment-method-last4")).to_have_text("4242")
        expect(page.get_by_test_id("payment-method")).to_contain_text("Visa ending in 4242")
        expect(page.get_by_test_id("payment-method-expiry")).to_have_text("12/2034")
        expect(page.locator("#history").get_by_role("button", name="Update card")).to_be_visible()
        assert page.evaluate(OVERFLOWS_JS) == [], name
        shot(page, name)

    # The receipt opens Stripe's (the double's) page for that charge.
    receipt.click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(double.url)}/receipts/ch_"))
    expect(page.get_by_text("$15.00").first).to_be_visible()

    # A member sees the card, but changing it is for owners and admins.
    page = browsers.page(user=member, viewport=PHONE)
    page.goto("/settings/billing/")
    expect(page.get_by_test_id("payment-method-last4")).to_have_text("4242")
    expect(page.locator(f'#history tr[data-purchase="{purchase.pk}"]')).to_be_visible()
    expect(page.locator("#history").get_by_role("button", name="Update card")).to_have_count(0)


def test_every_kind_of_payment_reads_whole_on_a_phone_and_a_desktop(browsers):
    from datetime import UTC, datetime

    from billing.models import Plan, TopUpPack, Workspace

    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Workspace.objects.filter(pk=ws.pk).update(
        stripe_customer_id=f"cus_layout_{ws.pk}",
        payment_method_id="pm_layout",
        payment_method_type="card",
        payment_method_brand="amex",
        payment_method_last4="0005",
        payment_method_exp_month=1,
        payment_method_exp_year=2020,
    )
    pack, pro, ultra = TopUpPack.objects.get(key="500k"), Plan.objects.get(key="pro"), Plan.objects.get(key="ultra")
    paid_at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    made = [
        Purchase(
            kind="subscription", status="paid", plan=pro, seats=12, amount_cents=pro.price_cents * 12,
            period_start=paid_at, period_end=datetime(2026, 12, 10, 9, tzinfo=UTC), paid_at=paid_at,
            receipt_url="https://invoice.stripe.com/i/acct_1/test_" + "x" * 80,
        ),
        Purchase(kind="upgrade", status="paid", plan=ultra, seats=1, amount_cents=12_345, disputed_cents=12_345,
                 paid_at=paid_at, receipt_url="https://invoice.stripe.com/i/in_2"),
        Purchase(kind="top_up", status="paid", pack=pack, credits=pack.amount, amount_cents=pack.price_cents,
                 refunded_cents=2_500, paid_at=paid_at, receipt_url="https://pay.stripe.com/receipts/ch_3"),
        Purchase(kind="auto_top_up", status="failed", pack=pack, credits=pack.amount, amount_cents=pack.price_cents,
                 failure="Your card needs you to authenticate this payment, which cannot happen automatically."),
        Purchase(kind="top_up", status="processing", pack=pack, credits=pack.amount, amount_cents=pack.price_cents),
        Purchase(kind="top_up", status="paid", pack=pack, credits=pack.amount, amount_cents=pack.price_cents,
                 refunded_cents=pack.price_cents, paid_at=paid_at, receipt_url="https://pay.stripe.com/receipts/ch_4"),
    ]  # fmt: skip
    for purchase in made:
        purchase.workspace = ws
    Purchase.objects.bulk_create(made)

    for viewport, name in ((WIDE, "all-desktop"), (PHONE, "all-phone")):
        page = browsers.page(user=owner, viewport=viewport)
        page.goto("/settings/billing/")
        history = page.locator("#history")
        for text in (
            "Pro plan × 12 seats, Nov 10 – Dec 10",
            "Upgrade to Ultra",
            "Disputed",
            "$123.45 disputed",
            "Refunded in part",
            "$25 refunded",
            "Auto top-up: 500K credits",
            "Failed",
            "Your card needs you to authenticate this payment, which cannot happen automatically.",
            "Processing",
            "Refunded",
        ):
            expect(history.get_by_text(text, exact=True).first).to_be_visible()
        expect(history.get_by_role("link", name="Invoice")).to_have_count(2)
        expect(history.get_by_role("link", name="Receipt")).to_have_count(2)
        expect(page.get_by_test_id("payment-method")).to_contain_text("American Express ending in 0005")
        expect(page.get_by_test_id("payment-method")).to_contain_text("Expired")
        assert page.evaluate(OVERFLOWS_JS) == [], name
        shot(page, name)
