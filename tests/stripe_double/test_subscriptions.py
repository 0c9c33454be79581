"""Subscriptions: calendar periods, renewals, the Billing Portal's plan and seat changes with proration, cancelling."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from fractions import Fraction

import pytest
import stripe

from stripe_double import StripeError
from stripe_double.subscriptions import add_months, period, prorate

from .conftest import START, event_types

DAY = 86400
FEB_1 = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
MAR_1 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def subscribed(client, double, catalog, customer, *, price=None, quantity=1):
    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": (price or catalog.pro).id, "quantity": quantity}],
        }
    )
    double.pay_checkout(session.id)
    return client.v1.subscriptions.retrieve(client.v1.checkout.sessions.retrieve(session.id).subscription)


def portal(client, customer):
    return client.v1.billing_portal.sessions.create({"customer": customer.id, "return_url": "http://app.test/billing/"})


def stamp(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, 9, 30, tzinfo=UTC).timestamp())


# --- periods and proration arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (stamp(2026, 1, 31), 1, stamp(2026, 2, 28)),
        (stamp(2028, 1, 31), 1, stamp(2028, 2, 29)),
        (stamp(2026, 1, 31), 2, stamp(2026, 3, 31)),
        (stamp(2026, 12, 15), 1, stamp(2027, 1, 15)),
        (stamp(2026, 3, 31), 12, stamp(2027, 3, 31)),
    ],
)
def test_months_are_calendar_months_clamped_to_the_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_periods_count_from_the_anchor_so_a_short_month_does_not_stick():
    monthly = {"interval": "month", "interval_count": 1}
    anchor = stamp(2026, 1, 31)
    assert [period(anchor, monthly, cycle) for cycle in range(3)] == [
        (stamp(2026, 1, 31), stamp(2026, 2, 28)),
        (stamp(2026, 2, 28), stamp(2026, 3, 31)),
        (stamp(2026, 3, 31), stamp(2026, 4, 30)),
    ]


def test_proration_rounds_half_up():
    assert prorate(1, left=1, length=2) == 1
    assert prorate(-1, left=1, length=2) == -1
    assert prorate(2900, left=21 * DAY, length=31 * DAY) == half_up(Fraction(2900 * 21, 31)) == 1965


# --- renewals ---------------------------------------------------------------------------------------


def test_a_renewal_bills_the_next_period_on_the_saved_card(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer, quantity=2)
    before = len(double.events)
    double.renew(subscription.id)
    assert double.now() == FEB_1  # the clock moved to the period's end

    renewed = client.v1.subscriptions.retrieve(subscription.id)
    item = renewed["items"].data[0]
    assert (renewed.status, item.current_period_start, item.current_period_end) == ("active", FEB_1, MAR_1)
    invoice = client.v1.invoices.retrieve(renewed.latest_invoice)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_cycle", "paid", 5800)
    assert (invoice.lines.data[0].period.start, invoice.lines.data[0].period.end) == (FEB_1, MAR_1)
    assert invoice.parent.subscription_details.subscription == subscription.id

    types = event_types(double, before)
    assert types[0] == "invoice.created"
    assert types.index("customer.subscription.updated") < types.index("invoice.paid")
    updated = next(e for e in double.events[before:] if e["type"] == "customer.subscription.updated")
    previous_item = updated["data"]["previous_attributes"]["items"]["data"][0]
    assert previous_item["current_period_end"] == FEB_1


def test_a_declined_renewal_leaves_the_invoice_open_and_the_subscription_past_due(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    before = len(double.events)
    double.renew(subscription.id, card="decline")
    renewed = client.v1.subscriptions.retrieve(subscription.id)
    assert renewed.status == "past_due"
    invoice = client.v1.invoices.retrieve(renewed.latest_invoice)
    assert (invoice.status, invoice.attempt_count, invoice.amount_paid) == ("open", 1, 0)
    assert invoice.next_payment_attempt == FEB_1 + 3 * DAY
    types = event_types(double, before)
    assert types.index("invoice.payment_failed") < len(types) - 1
    assert types[-1] == "customer.subscription.updated"
    assert double.events[-1]["data"]["previous_attributes"] == {"status": "active"}
    assert [i.id for i in client.v1.invoices.list({"subscription": subscription.id, "status": "open"}).data] == [
        invoice.id
    ]

    paid = client.v1.invoices.pay(invoice.id)  # the card was only refused for that renewal
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(subscription.id).status == "active"


def test_a_renewal_needing_authentication_asks_for_action(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    customer_methods = client.v1.customers.payment_methods.list(customer.id)
    assert len(customer_methods.data) == 1
    double.set_card(customer.id, "authenticate")
    before = len(double.events)
    double.renew(subscription.id)
    types = event_types(double, before)
    assert "invoice.payment_action_required" in types
    assert "invoice.payment_failed" in types
    assert client.v1.subscriptions.retrieve(subscription.id).status == "past_due"


def test_a_canceled_subscription_cannot_renew(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    client.v1.subscriptions.cancel(subscription.id)
    with pytest.raises(StripeError) as caught:
        double.renew(subscription.id)
    assert caught.value.status == 400


# --- the Billing Portal -----------------------------------------------------------------------------


def test_the_portal_page_lists_the_plan_and_its_choices(client, double, catalog, customer, browser):
    subscribed(client, double, catalog, customer, quantity=2)
    session = portal(client, customer)
    assert session.id.startswith("bps_")
    assert session.url == f"{double.url}/portal/{session.id}"
    page = browser.get(session.url)
    assert page.status == 200
    assert "Test billing portal (offline Stripe double)" in page.text
    for element in ('id="price"', 'id="quantity"', 'id="update"', 'id="cancel"', 'id="return"'):
        assert element in page.text
    assert 'value="2"' in page.text
    assert f'<option value="{catalog.max.id}">Max' in page.text
    assert f'<option value="{catalog.pro.id}" selected>Pro' in page.text


def test_a_portal_upgrade_is_prorated_and_paid_at_once(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer)
    session = portal(client, customer)
    double.advance(10 * DAY)
    before = len(double.events)
    answer = browser.post(
        f"/portal/{session.id}/update", {"subscription": subscription.id, "price": catalog.max.id, "quantity": "1"}
    )
    assert answer.status == 303
    assert answer.location.startswith(f"/portal/{session.id}?message=")
    assert "updated" in browser.get(answer.location).text

    changed = client.v1.subscriptions.retrieve(subscription.id)
    assert changed["items"].data[0].price.id == catalog.max.id
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    left, length = Fraction(FEB_1 - (START + 10 * DAY)), Fraction(FEB_1 - START)
    expected = half_up(9900 * left / length) - half_up(2900 * left / length)
    assert expected == 6706 - 1965
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_update", "paid", expected)
    credit, debit = invoice.lines.data
    assert (credit.amount, debit.amount) == (-1965, 6706)
    for line in (credit, debit):
        assert line.parent.invoice_item_details.proration is True
        assert (line.period.start, line.period.end) == (START + 10 * DAY, FEB_1)
    assert debit.pricing.price_details.price == catalog.max.id

    types = event_types(double, before)
    assert types[0] == "customer.subscription.updated"
    assert types.index("customer.subscription.updated") < types.index("invoice.paid")
    previous = double.events[before]["data"]["previous_attributes"]
    assert previous["items"]["data"][0]["price"]["id"] == catalog.pro.id


def test_added_seats_are_prorated_too(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer, quantity=2)
    session = portal(client, customer)
    double.advance(15 * DAY)
    form = {"subscription": subscription.id, "price": catalog.pro.id, "quantity": "5"}
    browser.post(f"/portal/{session.id}/update", form)
    changed = client.v1.subscriptions.retrieve(subscription.id)
    assert changed["items"].data[0].quantity == 5
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    left, length = Fraction(16 * DAY), Fraction(31 * DAY)
    assert invoice.amount_paid == half_up(5 * 2900 * left / length) - half_up(2 * 2900 * left / length)


def test_a_portal_downgrade_or_fewer_seats_is_applied_without_an_invoice(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer, price=catalog.max, quantity=3)
    session = portal(client, customer)
    first_invoice = subscription.latest_invoice
    before = len(double.events)
    browser.post(
        f"/portal/{session.id}/update", {"subscription": subscription.id, "price": catalog.pro.id, "quantity": "1"}
    )
    changed = client.v1.subscriptions.retrieve(subscription.id)
    item = changed["items"].data[0]
    assert (item.price.id, item.quantity) == (catalog.pro.id, 1)
    assert changed.latest_invoice == first_invoice
    assert event_types(double, before) == ["customer.subscription.updated"]
    assert len(client.v1.invoices.list({"customer": customer.id}).data) == 1


def test_cancel_at_period_end_then_renew_ends_the_subscription(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer)
    session = portal(client, customer)
    browser.post(f"/portal/{session.id}/cancel", {"subscription": subscription.id})
    canceling = client.v1.subscriptions.retrieve(subscription.id)
    assert (canceling.cancel_at_period_end, canceling.cancel_at, canceling.status) == (True, FEB_1, "active")
    assert double.events[-1]["type"] == "customer.subscription.updated"
    assert double.events[-1]["data"]["previous_attributes"]["cancel_at_period_end"] is False
    page = browser.get(session.url)
    assert 'id="reactivate"' in page.text
    assert "Cancels on" in page.text

    browser.post(f"/portal/{session.id}/reactivate", {"subscription": subscription.id})
    assert client.v1.subscriptions.retrieve(subscription.id).cancel_at_period_end is False
    browser.post(f"/portal/{session.id}/cancel", {"subscription": subscription.id})

    before = len(double.events)
    double.renew(subscription.id)
    ended = client.v1.subscriptions.retrieve(subscription.id)
    assert (ended.status, ended.ended_at) == ("canceled", FEB_1)
    assert event_types(double, before) == ["customer.subscription.deleted"]
    assert client.v1.subscriptions.list({"customer": customer.id}).data == []
    assert [s.id for s in client.v1.subscriptions.list({"customer": customer.id, "status": "all"}).data] == [
        subscription.id
    ]
    assert "No active subscription" in browser.get(session.url).text


def test_the_portal_refuses_a_subscription_of_another_customer(client, double, catalog, customer, browser):
    other = client.v1.customers.create({"email": "other@example.com"})
    theirs = subscribed(client, double, catalog, other)
    session = portal(client, customer)
    answer = browser.post(f"/portal/{session.id}/cancel", {"subscription": theirs.id})
    assert "Error" in browser.get(answer.location).text
    assert client.v1.subscriptions.retrieve(theirs.id).cancel_at_period_end is False


# --- the same through the API -----------------------------------------------------------------------


def test_an_api_update_with_always_invoice_bills_at_once(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    item = subscription["items"].data[0]
    changed = client.v1.subscriptions.update(
        subscription.id,
        {
            "items": [{"id": item.id, "price": catalog.max.id, "quantity": 2}],
            "proration_behavior": "always_invoice",
            "metadata": {"seats": "2"},
        },
    )
    assert changed.metadata.to_dict() == {"seats": "2"}
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert invoice.amount_paid == 2 * 9900 - 2900  # changed at the very start of the period


def test_create_prorations_waits_for_the_next_renewal(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    item = subscription["items"].data[0]
    double.advance(10 * DAY)
    changed = client.v1.subscriptions.update(subscription.id, {"items": [{"id": item.id, "price": catalog.max.id}]})
    assert changed.latest_invoice == subscription.latest_invoice
    double.renew(subscription.id)
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(subscription.id).latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [-1965, 6706, 9900]
    assert invoice.amount_paid == 6706 - 1965 + 9900


def test_proration_behavior_none_bills_nothing(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    item = subscription["items"].data[0]
    client.v1.subscriptions.update(
        subscription.id, {"items": [{"id": item.id, "price": catalog.max.id}], "proration_behavior": "none"}
    )
    double.renew(subscription.id)
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(subscription.id).latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [9900]


def test_a_refused_update_changes_nothing(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    item = subscription["items"].data[0]
    before = len(double.events)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(
            subscription.id,
            {"items": [{"id": item.id, "quantity": 3}, {"id": "si_missing", "quantity": 1}], "metadata": {"x": "1"}},
        )
    unchanged = client.v1.subscriptions.retrieve(subscription.id)
    assert unchanged["items"].data[0].quantity == 1
    assert unchanged.metadata.to_dict() == {}
    assert len(double.events) == before
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(subscription.id, {"items": [{"id": item.id, "price": catalog.pack.id}]})


def test_deleting_a_subscription_cancels_it_now(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer)
    double.advance(DAY)
    canceled = client.v1.subscriptions.cancel(subscription.id)
    assert (canceled.status, canceled.canceled_at, canceled.ended_at) == ("canceled", START + DAY, START + DAY)
    assert double.events[-1]["type"] == "customer.subscription.deleted"


def test_a_subscription_created_through_the_api_is_charged(client, double, catalog, customer):
    [method] = double.set_card(customer.id, "success")
    subscription = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": catalog.pro.id, "quantity": 2}],
            "default_payment_method": method["id"],
        }
    )
    current = client.v1.subscriptions.retrieve(subscription.id, {"expand": ["latest_invoice"]})
    assert current.status == "active"
    assert (current.latest_invoice.status, current.latest_invoice.amount_paid) == ("paid", 5800)
    assert current["items"].data[0].plan.amount == 2900
