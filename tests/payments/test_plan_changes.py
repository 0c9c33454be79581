"""Plan changes: a subscriber's plan card opens the Billing Portal on that plan's confirm page."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from billing.models import LedgerEntry, Plan, Purchase, Subscription, Wallet
from billing.services.payments import plan_lookup_key
from billing.stripe_double import StripeDouble
from tests.factories import UserFactory, WorkspaceFactory
from tests.payments.conftest import API_KEY, WEBHOOK_SECRET
from tests.payments.test_subscriptions import books_balanced, live, subscribe


@pytest.fixture
def stripe_double():
    """A double of each test's own on the real clock: these tests compare Stripe's periods with the wallet's, and
    the session's double runs ahead wherever another test advanced it."""
    with StripeDouble(host="127.0.0.1", port=0, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as double:
        yield double


def hosted(method: str, url: str) -> tuple[int, str, str]:
    """A person's browser on the double's hosted page, not following redirects: (status, Location, text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        body = "" if method == "POST" else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read().decode()
    finally:
        connection.close()


def price_of(double: StripeDouble, plan_key: str) -> str:
    [price] = [p for p in double.store.all("price") if p["lookup_key"] == plan_lookup_key(plan_key) and p["active"]]
    return price["id"]


def card_posted(client, plan_key: str, **form: str) -> str:
    """Press a plan card on the billing page; the address it sends the browser to."""
    response = client.post(reverse("billing:purchase", args=["upgrade", plan_key]), form)
    assert response.status_code == 303, response.content[:300]
    return response["Location"]


# --- a subscriber's plan cards: the portal's confirm page for that plan -----------------------------------------


@live
def test_change_to_max_for_an_ultra_subscriber_confirms_max_in_the_portal(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "ultra")
    sub = Subscription.objects.get(workspace=ws)
    billed = webhooks.object(sub.stripe_subscription_id)["items"]["data"][0]
    balance = Wallet.objects.get(workspace=ws).plan_balance

    url = card_posted(client, "max")
    assert url.startswith(f"{webhooks.url}/portal/bps_")
    session = webhooks.object(url.rsplit("/", 1)[1])
    flow = session["flow"]
    assert flow["type"] == "subscription_update_confirm"
    assert flow["subscription_update_confirm"]["subscription"] == sub.stripe_subscription_id
    assert flow["subscription_update_confirm"]["items"] == [
        {"id": billed["id"], "price": price_of(webhooks, "max"), "quantity": 1}
    ]
    assert flow["after_completion"]["redirect"]["return_url"].endswith(reverse("billing:settings_billing"))

    status, _, page = hosted("GET", url)
    assert status == 200 and "Confirm your plan change" in page
    assert 'id="new-plan">Sigora Max ·' in page and 'id="current-plan">Sigora Ultra ·' in page  # Max, not Ultra
    assert f'id="price" value="{price_of(webhooks, "max")}"' in page

    status, location, _ = hosted("POST", f"{url}/confirm")
    assert status == 303 and location.endswith(reverse("billing:settings_billing"))
    webhooks.wait_for_deliveries()
    assert webhooks.object(sub.stripe_subscription_id)["items"]["data"][0]["price"]["id"] == price_of(webhooks, "max")
    sub.refresh_from_db()
    ws.refresh_from_db()
    # A downgrade: Stripe bills Max from the renewal; the workspace keeps Ultra and its bucket until then.
    assert (sub.plan.key, ws.plan.key) == ("max", "ultra")
    assert Wallet.objects.get(workspace=ws).plan_balance == balance
    assert not Purchase.objects.filter(workspace=ws, kind="upgrade").exists()

    # Max is what Stripe bills now: its card says so instead of opening a change to nothing.
    response = client.post(reverse("billing:purchase", args=["upgrade", "max"]), follow=True)
    assert "already bills Max" in response.content.decode()
    assert books_balanced()


@live
def test_a_larger_plan_confirmed_in_the_portal_grants_the_prorated_difference_once(client, webhooks):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "pro", seats=2)
    pro, ultra = Plan.objects.get(key="pro"), Plan.objects.get(key="ultra")

    url = card_posted(client, "ultra")
    assert webhooks.object(url.rsplit("/", 1)[1])["flow"]["subscription_update_confirm"]["items"][0]["quantity"] == 1
    assert hosted("POST", f"{url}/confirm")[0] == 303
    webhooks.wait_for_deliveries()
    assert hosted("POST", f"{url}/confirm")[0] == 303  # a second press of Confirm changes nothing
    webhooks.wait_for_deliveries()

    ws.refresh_from_db()
    assert (ws.plan.key, ws.seats) == ("ultra", 1)
    [grant] = LedgerEntry.objects.filter(workspace=ws, idempotency_key__startswith="plan-upgrade:")
    assert 0 < grant.plan_delta <= ultra.allowance - pro.allowance * 2
    assert Purchase.objects.get(workspace=ws, kind="upgrade").credits == grant.plan_delta
    assert books_balanced()


@live
def test_a_per_seat_card_sends_its_seats_into_the_flow(client, webhooks):
    owner = UserFactory()
    WorkspaceFactory(owner=owner)
    subscribe(client, webhooks, owner, "max")
    url = card_posted(client, "pro", seats="3")
    items = webhooks.object(url.rsplit("/", 1)[1])["flow"]["subscription_update_confirm"]["items"]
    assert (items[0]["price"], items[0]["quantity"]) == (price_of(webhooks, "pro"), 3)
    [new_plan] = re.findall(r'id="new-plan">([^<]*)', hosted("GET", url)[2])
    assert "Pro" in new_plan and "· 3 × $29.00" in new_plan
    response = client.post(reverse("billing:purchase", args=["upgrade", "pro"]), {"seats": "0"}, follow=True)
    assert "Seats must be a whole number" in response.content.decode()
