"""Auto top-up: bought off-session with the saved card when the balance runs low; once; off on a decline."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse

from billing.credits import credits
from billing.errors import InvalidRequest
from billing.models import AutoTopUp, LedgerEntry, Purchase, Workspace
from billing.selectors import ledger_audit
from billing.services.auto_topup import auto_topup_set, auto_topups_run
from tests.conftest import balances, fund
from tests.factories import UserFactory, WorkspaceFactory

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def customer_with_card(client, double):
    """An owner whose workspace bought a 50K pack (saving the card), fulfilled on landing back."""
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    client.force_login(owner)
    assert client.post(reverse("billing:purchase", args=["top-up", "50k"])).status_code == 303
    purchase = Purchase.objects.get(workspace=ws)
    double.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    client.get(reverse("billing:checkout_return") + f"?session_id={purchase.stripe_checkout_session_id}")
    ws.refresh_from_db()
    return owner, ws


def auto_purchases(ws):
    return Purchase.objects.filter(workspace=ws, kind="auto_top_up")


def books_balanced() -> bool:
    return all(not chunk.problems for chunk in ledger_audit())


@pytest.mark.django_db
def test_below_the_threshold_the_pack_is_bought_and_credited_once(client, stripe):
    owner, ws = customer_with_card(client, stripe)
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(20_000), pack_key="100k", monthly_limit=2)
    assert auto_topups_run().started == []  # 60,000 credits: above the threshold
    fund(ws, plan=0, topup=5_000)
    summary = auto_topups_run()
    assert summary.started == summary.credited == [ws.pk]
    assert balances(ws) == (0, credits(105_000))
    [purchase] = auto_purchases(ws)
    assert purchase.status == "paid" and purchase.receipt_url.startswith(stripe.url)
    entry = LedgerEntry.objects.get(workspace=ws, kind="top_up", external_ref=purchase.stripe_payment_intent_id)
    assert entry.topup_delta == credits(100_000) and "Auto top-up" in entry.reason
    assert auto_topups_run().started == []  # the balance is healthy again
    assert books_balanced()


@pytest.mark.django_db
def test_the_monthly_limit_stops_further_top_ups(client, stripe):
    owner, ws = customer_with_card(client, stripe)
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(200_000), pack_key="50k", monthly_limit=2)
    assert auto_topups_run().credited == [ws.pk]
    assert auto_topups_run().credited == [ws.pk]
    assert auto_topups_run().started == []  # still below 200,000, but two this period is the limit
    assert auto_purchases(ws).count() == 2


@pytest.mark.parametrize(("card", "words"), [("decline", "declined"), ("authenticate", "authenticate")])
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_declined_or_authentication_card_turns_it_off_and_tells_the_owner(client, stripe, card, words):
    owner, ws = customer_with_card(client, stripe)
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(80_000), pack_key="100k", monthly_limit=3)
    stripe.set_card(ws.stripe_customer_id, card)
    before = balances(ws)
    summary = auto_topups_run()
    assert summary.failed == [ws.pk] and balances(ws) == before
    setting = AutoTopUp.objects.get(workspace=ws)
    assert not setting.enabled and words in setting.disabled_reason
    [purchase] = auto_purchases(ws)
    assert purchase.status == "failed"
    [message] = [m for m in mail.outbox if "auto top-up is off" in m.subject]
    assert message.to == [owner.email] and words in message.body
    assert auto_topups_run().started == []  # off until an owner turns it on again


@live
def test_concurrent_runs_buy_one_pack(client, stripe):
    owner, ws = customer_with_card(client, stripe)
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(80_000), pack_key="100k", monthly_limit=5)
    results, errors = [], []

    def run():
        try:
            results.append(auto_topups_run().started)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    bought = list(auto_purchases(ws).values_list("status", flat=True))
    assert bought == ["paid"], bought
    assert balances(ws)[1] == credits(150_000)
    assert books_balanced()


@pytest.mark.django_db
def test_a_run_that_read_the_balance_before_another_run_credited_the_pack_buys_nothing(client, stripe):
    from django.utils import timezone

    from billing.services.auto_topup import auto_topup_start, auto_topups_due

    owner, ws = customer_with_card(client, stripe)
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(80_000), pack_key="100k", monthly_limit=5)
    [stale] = auto_topups_due()  # a second run has read the balance (60,000: below the threshold)...
    assert auto_topups_run().credited == [ws.pk]  # ...when the first buys and credits the pack
    # Nothing in flight now, but the balance is healthy:
    assert auto_topup_start(setting=stale, now=timezone.now()) is None
    assert auto_purchases(ws).count() == 1 and balances(ws)[1] == credits(150_000)


@live
def test_the_webhook_and_the_immediate_answer_settle_it_once(client, webhooks):
    owner, ws = customer_with_card(client, webhooks)
    webhooks.wait_for_deliveries()
    auto_topup_set(workspace=ws, actor=owner, enabled=True, threshold=credits(80_000), pack_key="100k", monthly_limit=5)
    auto_topups_run()
    webhooks.wait_for_deliveries()
    for event in [e for e in webhooks.events if e["type"] == "payment_intent.succeeded"]:
        webhooks.redeliver(event["id"], times=3, concurrently=True)
    webhooks.wait_for_deliveries()
    assert LedgerEntry.objects.filter(workspace=ws, kind="top_up").count() == 2  # the 50K checkout, the auto 100K
    assert balances(ws)[1] == credits(150_000)


@pytest.mark.django_db
def test_settings_are_validated_and_need_a_saved_card(stripe):
    owner = UserFactory()
    ws = WorkspaceFactory(owner=owner)
    good = {"workspace": ws, "actor": owner, "threshold": credits(1_000), "pack_key": "100k", "monthly_limit": 3}
    with pytest.raises(InvalidRequest) as caught:
        auto_topup_set(**good, enabled=True)
    assert caught.value.field == "enabled"
    Workspace.objects.filter(pk=ws.pk).update(stripe_customer_id="cus_x")
    ws.refresh_from_db()
    for change, field in (
        ({"pack_key": "9k"}, "pack"),
        ({"threshold": 0}, "threshold"),
        ({"monthly_limit": 0}, "monthly_limit"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            auto_topup_set(**{**good, **change, "workspace": ws}, enabled=True)
        assert caught.value.field == field
    assert not AutoTopUp.objects.exists()
    setting = auto_topup_set(**{**good, "workspace": ws}, enabled=True)
    assert setting.enabled and setting.pack.key == "100k"
