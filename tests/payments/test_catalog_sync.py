"""`sync_stripe_catalog` creates every plan and pack in Stripe once, and follows price changes."""

from __future__ import annotations

import pytest
import stripe as stripe_lib
from django.core.management import call_command

from billing.models import Plan, TopUpPack
from billing.services.stripe_catalog import pack_lookup_key, plan_lookup_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_double(settings):
    from stripe_double import StripeDouble

    double = StripeDouble(host="127.0.0.1", port=0, api_key="sk_test_catalog", webhook_secret="whsec_catalog")
    double.start()
    settings.STRIPE_SECRET_KEY = "sk_test_catalog"
    settings.STRIPE_API_BASE = double.url
    yield double
    double.stop()


def prices(double) -> dict[str, dict]:
    client = stripe_lib.StripeClient("sk_test_catalog", base_addresses={"api": double.url})
    keys = [plan_lookup_key(p.key) for p in Plan.objects.exclude(price_cents=0)]
    keys += [pack_lookup_key(p.key) for p in TopUpPack.objects.all()]
    found = {}
    for start in range(0, len(keys), 10):
        page = client.v1.prices.list({"lookup_keys": keys[start : start + 10], "active": True})
        found.update({price.lookup_key: price.to_dict() for price in page.data})
    return found


def test_sync_creates_each_plan_and_pack_once_then_changes_nothing(fresh_double, capsys):
    call_command("sync_stripe_catalog")
    first = capsys.readouterr().out
    synced = prices(fresh_double)
    paid_plans = Plan.objects.exclude(price_cents=0)
    assert len(synced) == paid_plans.count() + TopUpPack.objects.count()
    for plan in paid_plans:
        price = synced[plan_lookup_key(plan.key)]
        assert price["unit_amount"] == plan.price_cents and price["recurring"]["interval"] == "month"
    for pack in TopUpPack.objects.all():
        price = synced[pack_lookup_key(pack.key)]
        assert price["unit_amount"] == pack.price_cents and price["recurring"] is None
    assert "created: sigora_plan_pro" in first

    call_command("sync_stripe_catalog")
    second = capsys.readouterr().out
    assert "0 change(s)" in second and "created: none" in second
    assert prices(fresh_double) == synced


def test_a_new_price_takes_over_the_lookup_key_and_the_old_one_is_retired(fresh_double, capsys):
    call_command("sync_stripe_catalog")
    old = prices(fresh_double)[pack_lookup_key("100k")]
    TopUpPack.objects.filter(key="100k").update(price_cents=1_400)
    capsys.readouterr()
    call_command("sync_stripe_catalog")
    assert "repriced: sigora_pack_100k" in capsys.readouterr().out
    new = prices(fresh_double)[pack_lookup_key("100k")]
    assert new["unit_amount"] == 1_400 and new["id"] != old["id"] and new["product"] == old["product"]
    client = stripe_lib.StripeClient("sk_test_catalog", base_addresses={"api": fresh_double.url})
    assert client.v1.prices.retrieve(old["id"]).active is False


def test_without_a_key_the_command_says_what_is_missing(settings):
    settings.STRIPE_SECRET_KEY = ""
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY"):
        call_command("sync_stripe_catalog")
