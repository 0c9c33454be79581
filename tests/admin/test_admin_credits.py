"""Staff read credits in the admin as customers read them on their pages: never the millicredits the rows hold.

Each amount below has a distinctive value, so its millicredits ("2500125", or grouped "2,500,125")
can only be on a page if the page printed a raw column.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.credits import credits
from billing.models import Hold, LedgerEntry, TopUpPack, Wallet
from billing.services import budget_set, charge, credits_adjust, hold_place, pack_update
from tests.admin.conftest import make_person
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db

# Each amount: its millicredits, and how every admin page must write it.
ADJUSTED = credits("2500.125")  # a goodwill top-up: "+2,500.125"
HAIKU = credits("1234.5")  # 12,345 Haiku tokens at 0.1 credits each
PLAN_LEFT = credits(10_000) - HAIKU  # the Free bucket after them: "8,765.5"
HELD = credits("777.777")
BUDGET = credits("4321.5")
PACK_BEFORE, PACK_AFTER = credits(50_000), credits("55555.5")
RAW = [credits(10_000), ADJUSTED, HAIKU, PLAN_LEFT, HELD, BUDGET, PACK_BEFORE, PACK_AFTER]


@pytest.fixture
def books(db):
    """A workspace with a plan grant, a usage charge, an adjustment, a hold and a budget, and a pack's changed size."""
    staff = make_person("superuser")
    ws = WorkspaceFactory(name="Acme")  # Free: a 10,000-credit bucket
    usage = charge(workspace=ws, action="claude-haiku", quantity=12_345, idempotency_key="h")
    adjustment = credits_adjust(
        workspace_id=ws.pk,
        bucket="top_up",
        amount=ADJUSTED,
        description="Goodwill credit",
        internal_note="Outage of May 3",
        actor=staff,
        idempotency_key="a",
    )
    hold = hold_place(workspace=ws, amount=HELD, idempotency_key="run-1")
    budget_set(workspace=ws, monthly_budget=BUDGET)
    pack = TopUpPack.objects.get(key="50k")
    pack_update(pack_id=pack.pk, actor=staff, changes={"amount": PACK_AFTER})
    return {"staff": staff, "ws": ws, "usage": usage, "adjustment": adjustment, "hold": hold, "pack": pack}


def raw_millicredits_in(html: str) -> list[str]:
    return [text for milli in RAW for text in (str(milli), f"{milli:,}") if text in html]


def page(client, name: str, *args, query=None) -> str:
    response = client.get(reverse(f"admin:{name}", args=args), query or {})
    assert response.status_code == 200, name
    return response.content.decode()


def test_no_admin_page_shows_millicredits_and_each_shows_the_amount_in_credits(client, books):
    client.force_login(books["staff"])
    ws, pack = books["ws"], books["pack"]
    grant = LedgerEntry.objects.get(workspace=ws, kind="plan_grant")
    expected = {
        ("billing_workspace_changelist",): ["8,765.5", "2,500.125", "11,265.625"],
        ("billing_workspace_change", ws.pk): [
            "plan bucket 8,765.5 of 10,000, top-up 2,500.125, total 11,265.625 credits",
            "4,321.5 credits a period",
        ],
        ("billing_workspace_adjust", ws.pk): ["<strong>8,765.5</strong> credits", "<strong>2,500.125</strong>"],
        ("billing_ledgerentry_changelist",): ["-1,234.5 plan", "+2,500.125 top-up", "8,765.5 / 2,500.125"],
        ("billing_ledgerentry_change", books["usage"].pk): [
            "-1,234.5 credits",
            "8,765.5 credits",
            "0.1 credits per token",
        ],
        ("billing_ledgerentry_change", books["adjustment"].pk): ["+2,500.125 credits", "2,500.125 credits"],
        ("billing_ledgerentry_change", grant.pk): ["+10,000 credits"],
        ("billing_wallet_changelist",): ["8,765.5", "2,500.125"],
        ("billing_wallet_change", ws.pk): ["8,765.5", "2,500.125", "10,000", "1,234.5"],
        ("billing_hold_changelist",): ["777.777"],
        ("billing_hold_change", books["hold"].pk): ["777.777"],
        ("billing_catalogchange_changelist",): ["50,000 credits", "55,555.5 credits"],
        ("billing_topuppack_change", pack.pk): ["50,000 credits → 55,555.5 credits", 'value="55,555.5"'],
        ("billing_topuppack_changelist",): ["55,555.5"],
        ("billing_plan_changelist",): ["80,000 per seat"],
    }
    for (name, *args), shown in expected.items():
        html = page(client, name, *args, query={"workspace": ws.pk} if "ledgerentry_changelist" in name else None)
        assert raw_millicredits_in(html) == [], name
        for text in shown:
            assert text in html, (name, text)
    hold_page = page(client, "billing_hold_change", books["hold"].pk)
    assert "Millicredits" not in hold_page and Hold.objects.get().amount == HELD  # exact, only shown differently


def test_the_adjustment_form_and_its_confirmation_speak_credits(client, books):
    client.force_login(books["staff"])
    ws = books["ws"]
    url = reverse("admin:billing_workspace_adjust", args=[ws.pk])
    form = client.get(url).content.decode()
    assert "Amount (credits)" in form and "Exact to a thousandth of a credit." in form
    token = form.split('name="token" value="')[1].split('"')[0]
    data = {"amount": "-8,765.5", "bucket": "plan", "description": "Correction", "internal_note": "T9", "token": token}
    confirm = client.post(url, data).content.decode()
    assert "Confirm: -8,765.5 credits to the plan bucket of Acme" in confirm
    assert raw_millicredits_in(confirm) == []
    assert client.post(url, {**data, "confirm": "1"}).status_code == 302
    assert Wallet.objects.get(workspace=ws).plan_balance == 0  # exactly what was typed, to the millicredit


def test_a_raw_column_would_be_caught(client, books):
    """The check above fails on a page that prints a column as stored (what the ledger entry's page did)."""
    entry = books["adjustment"]
    assert raw_millicredits_in(f"<td>{entry.topup_delta}</td>") == [str(ADJUSTED)]
    assert raw_millicredits_in(f"<td>{entry.topup_delta:,}</td>") == [f"{ADJUSTED:,}"]
