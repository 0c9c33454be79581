"""Settings → Billing & Credits, the billing history region: what each role sees, and what it costs to render."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Membership, Purchase, TopUpPack, Workspace
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(settings):
    settings.STRIPE_SECRET_KEY = ""  # no Stripe configured: the region must not need it
    owner, member = UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Membership.objects.create(workspace=ws, user=member, role="member")
    return ws, owner, member


def card_on_file(ws):
    Workspace.objects.filter(pk=ws.pk).update(
        stripe_customer_id=f"cus_history_{ws.pk}",
        payment_method_id="pm_history",
        payment_method_type="card",
        payment_method_brand="mastercard",
        payment_method_last4="4444",
        payment_method_exp_month=3,
        payment_method_exp_year=2031,
        payment_method_as_of=datetime(2026, 12, 1, tzinfo=UTC),
    )


def paid_topups(ws, count):
    pack = TopUpPack.objects.get(key="100k")
    Purchase.objects.bulk_create(
        Purchase(
            workspace=ws,
            kind="top_up",
            status="paid",
            pack=pack,
            amount_cents=pack.price_cents,
            credits=pack.amount,
            receipt_url=f"https://pay.stripe.com/receipts/ch_{n}",
            paid_at=datetime(2026, 11, 1 + n % 28, tzinfo=UTC),
        )
        for n in range(count)
    )


def region(html: str) -> str:
    return html.split('<section id="history"')[1].split("</section>")[0]


def test_the_region_lists_payments_and_the_card_with_no_stripe_configured(client, team):
    ws, owner, _ = team
    card_on_file(ws)
    paid_topups(ws, 2)
    client.force_login(owner)
    shown = region(client.get(reverse("billing:settings_billing")).content.decode())
    assert shown.count("<tr data-purchase=") == 2
    assert "100K credits top-up" in shown and "$15" in shown and ">Paid<" in shown
    assert 'href="https://pay.stripe.com/receipts/ch_1"' in shown
    assert "Mastercard" in shown and 'data-testid="payment-method-last4">4444<' in shown and "03/2031" in shown
    # Owners and admins update the card in Stripe's portal.
    assert f'action="{reverse("billing:billing_portal")}"' in shown and "Update card" in shown


def test_members_see_the_card_but_cannot_open_the_portal(client, team):
    ws, _, member = team
    card_on_file(ws)
    client.force_login(member)
    shown = region(client.get(reverse("billing:settings_billing")).content.decode())
    assert 'data-testid="payment-method-last4">4444<' in shown
    assert "Update card" not in shown and reverse("billing:billing_portal") not in shown


def test_with_nothing_bought_the_region_says_what_will_appear(client, team):
    _, owner, _ = team
    client.force_login(owner)
    shown = region(client.get(reverse("billing:settings_billing")).content.decode())
    assert "No card on file yet" in shown and "Update card" not in shown
    assert "No payments yet. When you buy a top-up or a plan" in shown


def test_the_page_costs_the_same_queries_with_no_payments_or_a_full_history(client, team):
    ws, owner, _ = team
    client.force_login(owner)
    url = reverse("billing:settings_billing")
    client.get(url)  # warm: the catalog snapshot, the session

    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    empty = queries()
    card_on_file(ws)
    paid_topups(ws, 40)
    full = queries()
    assert len(full) == len(empty)
    # The history is read in the round trip that reads the usage and the transactions.
    [read] = [sql for sql in full if "billing_purchase" in sql]
    assert "billing_dailyusage" in read and "billing_ledgerentry" in read
    assert region(client.get(url).content.decode()).count("<tr data-purchase=") == 24


def test_older_payments_come_a_page_at_a_time(client, team):
    ws, owner, _ = team
    paid_topups(ws, 30)
    client.force_login(owner)
    first = client.get(reverse("billing:history"), HTTP_HX_REQUEST="true").content.decode()
    assert "<h1>" not in first and first.count("<tr data-purchase=") == 24  # the region alone
    cursor = re.search(r"history_before=(\d+)", first).group(1)
    older = client.get(reverse("billing:history"), {"history_before": cursor}, HTTP_HX_REQUEST="true")
    rows = older.content.decode()
    assert rows.count("<tr data-purchase=") == 6 and "<table" not in rows and "Older payments" not in rows
    # Without JS, the link is the whole page starting at the cursor.
    page = client.get(reverse("billing:settings_billing"), {"history_before": cursor}).content.decode()
    assert region(page).count("<tr data-purchase=") == 6


@pytest.mark.parametrize("cursor", ["", "x", "-1", "9" * 40, "1\x00"])
def test_a_cursor_that_is_no_id_shows_the_newest(client, team, cursor):
    ws, owner, _ = team
    paid_topups(ws, 3)
    client.force_login(owner)
    response = client.get(reverse("billing:history"), {"history_before": cursor}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode().count("<tr data-purchase=") == 3


def test_a_payment_still_clearing_refreshes_the_region_until_it_settles(client, team):
    ws, owner, _ = team
    pack = TopUpPack.objects.get(key="50k")
    clearing = Purchase.objects.create(
        workspace=ws, kind="top_up", status="processing", pack=pack, amount_cents=900, credits=pack.amount
    )
    client.force_login(owner)
    fragment = client.get(reverse("billing:history"), HTTP_HX_REQUEST="true").content.decode()
    assert ">Processing<" in fragment and 'hx-trigger="every 10s' in fragment
    Purchase.objects.filter(pk=clearing.pk).update(status="paid")
    fragment = client.get(reverse("billing:history"), HTTP_HX_REQUEST="true").content.decode()
    assert ">Paid<" in fragment and "hx-trigger" not in fragment
