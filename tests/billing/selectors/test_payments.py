"""The billing history's selectors: each status and description, what is listed, in what order, and the card on file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from billing.credits import credits
from billing.models import Plan, Purchase, TopUpPack
from billing.selectors import (
    HISTORY_LIMIT,
    billing_history,
    payment_method_on_file,
    purchase_description,
    purchase_status,
)
from tests.factories import WorkspaceFactory

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("status", "refunded", "disputed", "shown"),
    [
        ("paid", 0, 0, "paid"),
        ("paid", 500, 0, "refunded_in_part"),
        ("paid", 1500, 0, "refunded"),
        ("paid", 0, 1500, "disputed"),
        ("paid", 500, 1000, "disputed"),  # a dispute on what was left after a partial refund
        ("failed", 0, 0, "failed"),
        ("processing", 0, 0, "processing"),
    ],
)
def test_the_status_says_where_the_money_stands(status, refunded, disputed, shown):
    assert purchase_status(status=status, amount_cents=1500, refunded_cents=refunded, disputed_cents=disputed) == shown


def describe(kind, plan=None, per_seat=False, seats=None, amount=0, start=None, end=None, zone=UTC):
    return purchase_description(
        kind=kind,
        plan_name=plan,
        per_seat=per_seat,
        seats=seats,
        credits=credits(amount),
        period_start=start,
        period_end=end,
        zone=zone,
    )


def test_each_kind_says_what_was_bought():
    dec10, jan10 = datetime(2026, 12, 10, 9, tzinfo=UTC), datetime(2027, 1, 10, 9, tzinfo=UTC)
    assert describe("top_up", amount=100_000) == "100K credits top-up"
    assert describe("auto_top_up", amount=100_000) == "Auto top-up: 100K credits"
    assert describe("subscription", "Max", start=dec10, end=jan10) == "Max plan, Dec 10 – Jan 10"
    assert describe("renewal", "Max", start=dec10, end=jan10) == "Max plan, Dec 10 – Jan 10"
    assert describe("subscription", "Pro", per_seat=True, seats=3, start=dec10, end=jan10) == (
        "Pro plan × 3 seats, Dec 10 – Jan 10"
    )
    assert describe("subscription", "Pro", per_seat=True, seats=1, start=dec10, end=jan10) == (
        "Pro plan, Dec 10 – Jan 10"
    )
    assert describe("upgrade", "Ultra", start=dec10, end=jan10) == "Upgrade to Ultra"
    assert describe("upgrade", "Pro", per_seat=True, seats=5) == "Upgrade to Pro × 5 seats"
    # A purchase recorded before periods were kept names its plan alone.
    assert describe("renewal", "Max") == "Max plan"


def test_a_period_reads_on_the_readers_calendar():
    start, end = datetime(2026, 12, 9, 23, 30, tzinfo=UTC), datetime(2027, 1, 9, 23, 30, tzinfo=UTC)
    assert describe("renewal", "Max", start=start, end=end, zone=PARIS) == "Max plan, Dec 10 – Jan 10"


def purchase(ws, kind="top_up", status="paid", **fields):
    pack = TopUpPack.objects.get(key="100k")
    defaults = {"pack": pack, "amount_cents": pack.price_cents, "credits": pack.amount}
    if kind in ("subscription", "renewal", "upgrade"):
        plan = Plan.objects.get(key="max")
        defaults = {"plan": plan, "seats": 1, "amount_cents": plan.price_cents, "credits": plan.allowance}
    return Purchase.objects.create(workspace=ws, kind=kind, status=status, **{**defaults, **fields})


@pytest.mark.django_db
def test_the_history_lists_what_was_paid_or_tried_newest_first_with_its_link(django_assert_num_queries):
    ws, other = WorkspaceFactory(), WorkspaceFactory()
    paid_at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    topup = purchase(ws, receipt_url="https://pay.stripe.com/receipts/ch_1", paid_at=paid_at)
    purchase(ws, status="pending")  # a checkout nobody paid: nothing was charged
    purchase(ws, status="expired")
    renewal = purchase(
        ws,
        kind="renewal",
        receipt_url="https://invoice.stripe.com/i/in_1",
        period_start=datetime(2026, 12, 10, tzinfo=UTC),
        period_end=datetime(2027, 1, 10, tzinfo=UTC),
        paid_at=paid_at,
    )
    declined = purchase(ws, kind="auto_top_up", status="failed", failure="The card was declined (card_declined).")
    clearing = purchase(ws, status="processing", receipt_url="javascript:alert(1)")
    refunded = purchase(ws, refunded_cents=500, receipt_url="http://localhost:12111/receipts/ch_2", paid_at=paid_at)
    purchase(other)

    with django_assert_num_queries(1):
        history = billing_history(workspace_id=ws.pk, zone=UTC)

    rows = {row.pk: row for row in history.rows}
    assert [row.pk for row in history.rows] == [refunded.pk, clearing.pk, declined.pk, renewal.pk, topup.pk]
    assert (rows[topup.pk].description, rows[topup.pk].status, rows[topup.pk].amount_cents) == (
        "100K credits top-up",
        "paid",
        1500,
    )
    assert (rows[topup.pk].link_url, rows[topup.pk].link_label) == ("https://pay.stripe.com/receipts/ch_1", "Receipt")
    assert rows[topup.pk].at == paid_at
    assert rows[renewal.pk].description == "Max plan, Dec 10 – Jan 10"
    assert (rows[renewal.pk].link_url, rows[renewal.pk].link_label) == ("https://invoice.stripe.com/i/in_1", "Invoice")
    assert (rows[declined.pk].status, rows[declined.pk].failure) == ("failed", "The card was declined (card_declined).")
    assert rows[declined.pk].description == "Auto top-up: 100K credits"
    assert rows[declined.pk].at == declined.created_at  # never paid: when it was tried
    assert (rows[clearing.pk].status, rows[clearing.pk].link_url) == ("processing", "")  # not a web address
    assert history.processing
    assert (rows[refunded.pk].status_label, rows[refunded.pk].refunded_cents) == ("Refunded in part", 500)
    assert rows[refunded.pk].link_url == "http://localhost:12111/receipts/ch_2"
    assert history.next_cursor is None


@pytest.mark.django_db
def test_the_history_is_bounded_and_pages_back_by_a_cursor():
    ws = WorkspaceFactory()
    made = [purchase(ws).pk for _ in range(HISTORY_LIMIT + 3)]
    first = billing_history(workspace_id=ws.pk, zone=UTC)
    assert [row.pk for row in first.rows] == made[::-1][:HISTORY_LIMIT]
    assert first.next_cursor == made[3]
    older = billing_history(workspace_id=ws.pk, zone=UTC, before=first.next_cursor)
    assert [row.pk for row in older.rows] == made[2::-1] and older.next_cursor is None
    assert not first.processing


@pytest.mark.django_db
def test_a_workspace_that_never_paid_has_an_empty_history():
    history = billing_history(workspace_id=WorkspaceFactory().pk, zone=UTC)
    assert history.rows == [] and history.next_cursor is None


@pytest.mark.django_db
def test_the_payment_method_on_file_reads_the_workspaces_own_record():
    ws = WorkspaceFactory()
    today = date(2026, 12, 6)
    assert payment_method_on_file(ws, today=today) is None

    ws.payment_method_type, ws.payment_method_brand, ws.payment_method_last4 = "card", "visa", "4242"
    ws.payment_method_exp_month, ws.payment_method_exp_year = 12, 2034
    card = payment_method_on_file(ws, today=today)
    assert (card.name, card.last4, card.expires, card.expired, card.is_card) == ("Visa", "4242", "12/2034", False, True)

    ws.payment_method_brand, ws.payment_method_exp_month, ws.payment_method_exp_year = "amex", 11, 2026
    card = payment_method_on_file(ws, today=today)
    assert (card.name, card.expires, card.expired) == ("American Express", "11/2026", True)
    ws.payment_method_exp_month = 12
    assert not payment_method_on_file(ws, today=today).expired  # good to the month's end

    ws.payment_method_type, ws.payment_method_brand, ws.payment_method_last4 = (
        "us_bank_account",
        "STRIPE TEST BANK",
        "6789",
    )
    ws.payment_method_exp_month = ws.payment_method_exp_year = None
    bank = payment_method_on_file(ws, today=today)
    assert (bank.name, bank.last4, bank.expires, bank.expired, bank.is_card) == (
        "STRIPE TEST BANK account",
        "6789",
        "",
        False,
        False,
    )
