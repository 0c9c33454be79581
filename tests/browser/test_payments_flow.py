"""Buying credits in a real browser: the offline Stripe double's hosted checkout, then back to the balance."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from billing.models import LedgerEntry, Purchase, TopUpPack
from stripe_double import StripeDouble
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

API_KEY = "sk_test_browser_payments"
SECRET = "whsec_browser_payments"


@pytest.fixture
def double(live_server, settings):
    with StripeDouble(
        host="127.0.0.1",
        port=0,
        api_key=API_KEY,
        webhook_secret=SECRET,
        webhook_url=f"{live_server.url}/stripe/webhook/",
    ) as running:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_WEBHOOK_SECRET = SECRET
        settings.STRIPE_API_BASE = running.url
        from billing.services.stripe_catalog import stripe_catalog_sync

        stripe_catalog_sync()
        yield running


def test_buy_a_pack_pay_on_the_test_checkout_and_see_the_balance_rise_by_its_credits(browsers, double):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    pack = TopUpPack.objects.get(key="100k")
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")

    page.get_by_role("button", name="Buy 100K", exact=True).click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(double.url)}/checkout/cs_test_"))
    expect(page.get_by_text("$15.00").first).to_be_visible()
    page.locator("#pay").click()

    expect(page).to_have_url(re.compile(r"/settings/billing/$"))
    expect(page.get_by_text("Payment received: 100,000 credits added")).to_be_visible()
    expect(page.get_by_test_id("total-credits")).to_have_text("110,000")
    double.wait_for_deliveries()
    entry = LedgerEntry.objects.get(workspace=ws, kind="top_up")
    assert entry.topup_delta == pack.amount
    assert Purchase.objects.get(workspace=ws).status == "paid"
    # The purchase shows in the transactions list with its receipt.
    receipt = page.locator(f'tr[data-entry="{entry.pk}"] a', has_text="Receipt")
    expect(receipt).to_have_attribute("href", re.compile(rf"^{re.escape(double.url)}/receipts/ch_"))


def test_a_declined_card_changes_nothing_and_cancel_comes_back(browsers, double):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    page = browsers.page(user=owner)
    page.goto("/settings/billing/")
    page.get_by_role("button", name="Buy 50K").click()
    page.locator("#decline").click()
    expect(page.get_by_text("Your card was declined.")).to_be_visible()
    page.locator("#cancel").click()
    expect(page).to_have_url(re.compile(r"/settings/billing/"))
    expect(page.get_by_test_id("total-credits")).to_have_text("10,000")
    assert not LedgerEntry.objects.filter(workspace=ws, kind="top_up").exists()
