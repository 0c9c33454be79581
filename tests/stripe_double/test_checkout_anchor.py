"""Checkout with ``subscription_data[billing_cycle_anchor]``: a short, prorated first period up to the anchor."""

from __future__ import annotations

from fractions import Fraction

import pytest
import stripe

from .conftest import START
from .test_subscriptions import FEB_1, half_up

HOUR, DAY = 3600, 86400
ANCHOR = START + 20 * DAY  # 2026-01-21


def anchored_checkout(client, catalog, customer, anchor=ANCHOR, **subscription_data):
    return client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": catalog.max.id, "quantity": 2}],
            "subscription_data": {"billing_cycle_anchor": anchor, **subscription_data},
        }
    )


def test_the_first_invoice_bills_the_time_left_until_the_anchor(client, double, catalog, customer, browser):
    session = anchored_checkout(client, catalog, customer)
    # Prorated against the month that ends at the anchor (Dec 21 – Jan 21: 31 days), as Stripe counts it.
    expected = half_up(Fraction(2 * 9900 * 20, 31))
    assert session.amount_total == expected
    assert "$" + f"{expected / 100:,.2f}" in browser.get(session.url).text

    double.pay_checkout(session.id)
    subscription = client.v1.subscriptions.retrieve(client.v1.checkout.sessions.retrieve(session.id).subscription)
    item = subscription["items"].data[0]
    assert subscription.billing_cycle_anchor == ANCHOR
    assert (item.current_period_start, item.current_period_end) == (START, ANCHOR)
    invoice = client.v1.invoices.retrieve(subscription.latest_invoice)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_create", "paid", expected)
    [line] = invoice.lines.data
    assert line.parent.subscription_item_details.proration is True
    assert (line.period.start, line.period.end, line.quantity) == (START, ANCHOR, 2)

    # From the anchor on, whole months counted from it.
    double.renew(subscription.id)
    renewed = client.v1.subscriptions.retrieve(subscription.id)
    item = renewed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (ANCHOR, ANCHOR + 31 * DAY)
    assert client.v1.invoices.retrieve(renewed.latest_invoice).amount_paid == 2 * 9900


def test_paid_after_the_anchor_the_whole_period_from_it_is_charged(client, double, catalog, customer):
    session = anchored_checkout(client, catalog, customer, anchor=START + HOUR)
    double.advance(2 * HOUR)  # within the session's day
    double.pay_checkout(session.id)
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert paid.amount_total == 2 * 9900
    item = client.v1.subscriptions.retrieve(paid.subscription)["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (START + HOUR, FEB_1 + HOUR)


@pytest.mark.parametrize(
    ("anchor", "extra", "param"),
    [
        (START - 1, {}, "subscription_data[billing_cycle_anchor]"),
        (FEB_1, {}, "subscription_data[billing_cycle_anchor]"),  # not before the first natural renewal
        (ANCHOR, {"proration_behavior": "sometimes"}, "subscription_data[proration_behavior]"),
        (ANCHOR, {"proration_behavior": "none"}, "subscription_data[proration_behavior]"),  # not in the double
    ],
)
def test_an_anchor_outside_the_first_period_is_refused(client, catalog, customer, anchor, extra, param):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        anchored_checkout(client, catalog, customer, anchor=anchor, **extra)
    assert refused.value.param == param
