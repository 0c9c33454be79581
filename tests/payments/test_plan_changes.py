"""Plan changes: a subscriber's plan card opens the Billing Portal on that plan's confirm page, and a workspace on a
paid plan without a subscription keeps its period and its bucket when it subscribes."""

from __future__ import annotations

import http.client
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import selectors
from billing.models import LedgerEntry, Plan, Purchase, Subscription, Wallet, Workspace
from billing.services import usage_event, usage_record
from billing.services.checkout import period_end_anchor
from billing.services.resets import periods_reset
from billing.services.stripe_catalog import plan_lookup_key
from stripe_double import StripeDouble
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


# --- a paid plan without a subscription ---------------------------------------------------------------------


def used(ws: Workspace, at, key: str) -> None:
    usage_record(workspace=ws, events=[usage_event(action="claude-opus", quantity=2_000, idempotency_key=key)], now=at)


@live
def test_subscribing_from_a_paid_plan_without_a_subscription_keeps_the_period_and_its_bucket(client, webhooks):
    owner = UserFactory()
    now = timezone.now()
    ws = WorkspaceFactory(owner=owner, plan_key="max", now=now - timedelta(days=20))  # as the demo or staff set it
    maxi, ultra = Plan.objects.get(key="max"), Plan.objects.get(key="ultra")
    used(ws, now - timedelta(days=3), "before-1")
    used(ws, now - timedelta(minutes=5), "before-2")  # today, before subscribing
    before = Wallet.objects.get(workspace=ws)

    purchase = subscribe(client, webhooks, owner, "ultra")
    purchase.refresh_from_db()
    ws.refresh_from_db()
    wallet = Wallet.objects.get(workspace=ws)
    sub = Subscription.objects.get(workspace=ws)

    # Stripe billed Ultra up to the period's end, no further: the period and the bucket stay.
    assert abs((sub.current_period_end - before.period_end).total_seconds()) < 1
    assert (wallet.period_start, wallet.period_end) == (before.period_start, before.period_end)
    assert 0 < purchase.amount_cents < ultra.price_cents
    assert not LedgerEntry.objects.filter(workspace=ws, kind="plan_expiry").exists()
    [joined] = LedgerEntry.objects.filter(workspace=ws, idempotency_key__startswith="plan-join:")
    left = (sub.current_period_end - sub.current_period_start).total_seconds()
    length = (before.period_end - before.period_start).total_seconds()
    assert joined.plan_delta == ultra.allowance * int(left) // int(length)  # Ultra for the part of the period left
    assert joined.reason == "Ultra plan: credits for the rest of this period"
    assert wallet.plan_balance == before.plan_balance + joined.plan_delta
    assert wallet.period_allowance == maxi.allowance + joined.plan_delta
    assert (ws.plan.key, purchase.status, purchase.credits) == ("ultra", "paid", joined.plan_delta)

    # The usage panel and the balance card count the same period, so they agree.
    used(ws, timezone.now(), "after")
    wallet = Wallet.objects.select_related("workspace__plan").get(workspace=ws)
    usage = selectors.usage_summary(wallet=wallet, today=timezone.now().astimezone(ws.zone).date())
    assert usage.total == selectors.balance_of(wallet).used > 0
    client.force_login(owner)
    page = client.get(reverse("billing:settings_billing")).content.decode()
    assert "Ultra" in page and "Manage subscription" in page
    assert books_balanced()

    # At the period's end Stripe renews at the anchor: the bucket expires with the period it was granted for, and
    # the next period opens once, with Ultra's whole allowance; the reset job then finds nothing to do.
    webhooks.renew(sub.stripe_subscription_id)
    webhooks.wait_for_deliveries()
    wallet = Wallet.objects.get(workspace=ws)
    assert abs((wallet.period_start - before.period_end).total_seconds()) < 1
    assert wallet.plan_balance == wallet.period_allowance == ultra.allowance
    [expiry] = LedgerEntry.objects.filter(workspace=ws, kind="plan_expiry")
    assert expiry.metadata["period_end"] == before.period_end.isoformat()
    assert periods_reset(now=before.period_end + timedelta(hours=1)).workspaces == 0
    assert books_balanced()


@pytest.mark.django_db
def test_the_anchor_is_the_period_end_only_for_a_paid_plan_far_enough_ahead(stripe):
    now = timezone.now()
    free = WorkspaceFactory()
    assert period_end_anchor(workspace=free, now=now) is None  # Free → paid opens Stripe's period now
    comped = WorkspaceFactory(plan_key="max", now=now - timedelta(days=10))
    end = Wallet.objects.get(workspace=comped).period_end
    assert period_end_anchor(workspace=comped, now=now) == int(end.timestamp())
    # Less than Checkout's half hour left: that period simply ends, the subscription opens the next.
    assert period_end_anchor(workspace=comped, now=end - timedelta(minutes=20)) is None
