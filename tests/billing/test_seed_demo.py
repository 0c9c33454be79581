import base64
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import (
    Action,
    DailyUsage,
    LedgerEntry,
    Purchase,
    RefusalTally,
    Specialist,
    SpecialistCap,
    Subscription,
    Wallet,
    Workspace,
)

pytestmark = pytest.mark.django_db


def seed(*options):
    out = StringIO()
    call_command("seed_demo", "--force", *options, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_builds_a_live_month_and_is_idempotent():
    first = seed()
    assert "demo@sigora.test / sigora-demo" in first
    workspace = Workspace.objects.get(name="Acme Growth")
    entries = LedgerEntry.objects.filter(workspace=workspace)
    count = entries.count()
    assert count > 500
    usage = entries.filter(kind="usage")
    assert set(usage.values_list("action__key", flat=True)) == set(Action.objects.values_list("key", flat=True))
    assert set(usage.values_list("specialist", flat=True)) == set(Specialist.objects.values_list("key", flat=True))
    assert entries.filter(kind="top_up").count() == 1
    assert workspace.plan.key == "max"
    days = {entry.created_at.date() for entry in usage}
    assert len(days) >= 20
    # Written through the engine: its usage counters agree with the ledger, day by day.
    counters = DailyUsage.objects.filter(workspace=workspace)
    assert counters.aggregate(total=Sum("credits"))["total"] == -sum(e.amount for e in usage)
    assert counters.aggregate(total=Sum("events"))["total"] == usage.count()
    assert RefusalTally.objects.filter(workspace=workspace, code="sequence_paused").exists()
    assert SpecialistCap.objects.filter(workspace=workspace).count() == 2

    second = seed()
    assert "already seeded" in second
    assert Workspace.objects.filter(name="Acme Growth").count() == 1
    assert LedgerEntry.objects.count() == count

    verified = StringIO()
    call_command("verify_ledger", stdout=verified, stderr=StringIO())
    assert "all balanced" in verified.getvalue()
    wallet = Wallet.objects.get(workspace=workspace)
    assert wallet.total == sum(e.amount for e in entries)


def test_seed_demo_refuses_without_debug():
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert not Workspace.objects.exists()


@pytest.fixture
def stripe_double(settings):
    """The offline double, as make run starts it beside the server (here on a port of its own), with the catalog."""
    from billing.services.stripe_catalog import stripe_catalog_sync
    from stripe_double import StripeDouble

    def started() -> StripeDouble:
        double = StripeDouble(api_key="sk_test_seed_demo", webhook_secret="whsec_seed_demo").start()
        settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_seed_demo", "whsec_seed_demo"
        settings.STRIPE_API_BASE = double.url
        stripe_catalog_sync()
        return double

    doubles = [started()]
    yield doubles, started
    for double in doubles:
        double.stop()


def test_seed_demo_subscribe_makes_the_demo_a_subscriber_in_the_double(stripe_double, client):
    doubles, restarted = stripe_double
    seed()
    workspace = Workspace.objects.get(name="Acme Growth")
    before = Wallet.objects.get(workspace=workspace)
    usage = LedgerEntry.objects.filter(workspace=workspace, kind="usage").count()

    out = seed("--subscribe")
    assert "The demo subscribes to Max in the Stripe double" in out
    workspace.refresh_from_db()
    subscription = Subscription.objects.get(workspace=workspace)
    assert (subscription.plan.key, subscription.status, workspace.plan.key) == ("max", "active", "max")
    # Stripe's side: an active subscription billed to the demo's period end, a paid invoice, a card on file.
    stripe_sub = doubles[0].object(subscription.stripe_subscription_id)
    assert stripe_sub["status"] == "active" and stripe_sub["customer"] == workspace.stripe_customer_id
    assert abs(stripe_sub["items"]["data"][0]["current_period_end"] - before.period_end.timestamp()) < 1
    card = doubles[0].object(stripe_sub["default_payment_method"])
    assert (card["customer"], card["card"]["last4"]) == (workspace.stripe_customer_id, "4242")
    [invoice] = [i for i in doubles[0].store.all("invoice") if i["customer"] == workspace.stripe_customer_id]
    assert (invoice["status"], invoice["billing_reason"]) == ("paid", "subscription_create")
    purchase = Purchase.objects.get(workspace=workspace, kind="subscription")
    assert (purchase.status, purchase.stripe_invoice_id, purchase.amount_cents) == (
        "paid",
        invoice["id"],
        invoice["amount_paid"],
    )
    # Our records came from Stripe's state, and the demo's month is intact: its period, its usage, no expiry.
    wallet = Wallet.objects.get(workspace=workspace)
    assert (wallet.period_start, wallet.period_end) == (before.period_start, before.period_end)
    assert LedgerEntry.objects.filter(workspace=workspace, kind="usage").count() == usage
    assert not LedgerEntry.objects.filter(workspace=workspace, kind="plan_expiry").exists()
    assert wallet.plan_balance == before.plan_balance + purchase.credits > before.plan_balance
    client.force_login(workspace.memberships.get(role="owner").user)
    page = client.get(reverse("billing:settings_billing")).content.decode()
    assert "Manage subscription" in page and "Switch to" not in page

    # Run again: nothing new. After a restart the double has forgotten it all: the demo subscribes again there.
    assert "already subscribes to Max" in seed("--subscribe")
    assert Purchase.objects.filter(workspace=workspace, kind="subscription").count() == 1
    doubles.append(restarted())
    assert "The demo subscribes to Max" in seed("--subscribe")
    renewed = Subscription.objects.get(workspace=workspace)
    assert renewed.stripe_subscription_id != subscription.stripe_subscription_id and renewed.is_live
    assert doubles[1].object(renewed.stripe_subscription_id)["status"] == "active"
    assert Wallet.objects.get(workspace=workspace).period_end == before.period_end

    verified = StringIO()
    call_command("verify_ledger", stdout=verified, stderr=StringIO())
    assert "all balanced" in verified.getvalue()


def test_seed_demo_subscribe_refuses_real_stripe(settings):
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = "sk_live_real", ""
    with pytest.raises(CommandError, match="offline Stripe double only"):
        seed("--subscribe")
    assert not Subscription.objects.exists()


def test_seed_demo_prints_the_staff_users_authenticator_key_and_the_staff_sign_in_takes_its_codes():
    printed = seed()
    assert "admin@sigora.test / sigora-admin" in printed
    key = re.search(r"authenticator app with the key ([A-Z2-7]+) \(local only\)", printed).group(1)
    seed()  # a second run keeps the same key: the developer's app goes on working
    device = TOTPDevice.objects.get(user__username="admin@sigora.test", confirmed=True)
    assert device.bin_key == base64.b32decode(key)

    staff_client = Client()  # Django's own: the password, then the code, through the pages
    staff_client.post("/accounts/login/", {"username": "admin@sigora.test", "password": "sigora-admin"})
    assert staff_client.get("/admin/")["Location"].startswith("/accounts/two-factor/")
    code = f"{totp(base64.b32decode(key)):06d}"
    assert staff_client.post("/accounts/two-factor/", {"code": code, "next": "/admin/"})["Location"] == "/admin/"
    assert staff_client.get("/admin/").status_code == 200
