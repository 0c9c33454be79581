"""Billing Portal deep links: a `subscription_update_confirm` flow opens the confirm page of one plan change."""

from __future__ import annotations

from fractions import Fraction

import pytest
import stripe

from .conftest import START, event_types
from .test_subscriptions import FEB_1, half_up, subscribed

DAY = 86400
RETURN_URL = "http://app.test/settings/billing/"


def confirm_flow(subscription, price, quantity=1, after=None):
    item = subscription["items"].data[0]
    return {
        "type": "subscription_update_confirm",
        "subscription_update_confirm": {
            "subscription": subscription.id,
            "items": [{"id": item.id, "price": price.id, "quantity": quantity}],
        },
        "after_completion": after or {"type": "redirect", "redirect": {"return_url": RETURN_URL}},
    }


def flow_portal(client, customer, flow):
    return client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": RETURN_URL, "flow_data": flow}
    )


def test_the_session_carries_the_flow_in_stripes_shape(client, double, catalog, customer):
    subscription = subscribed(client, double, catalog, customer, price=catalog.max)
    session = flow_portal(client, customer, confirm_flow(subscription, catalog.pro))
    assert isinstance(session.flow, stripe.billing_portal.Session.Flow)
    assert session.flow.type == "subscription_update_confirm"
    assert session.flow.after_completion.type == "redirect"
    assert session.flow.after_completion.redirect.return_url == RETURN_URL
    confirm = session.flow.subscription_update_confirm
    assert confirm.subscription == subscription.id
    [item] = confirm["items"]
    assert (item.id, item.price, item.quantity) == (subscription["items"].data[0].id, catalog.pro.id, 1)
    assert session.flow.subscription_cancel is None and session.flow.subscription_update is None
    # A session without flow_data has none, as before.
    assert client.v1.billing_portal.sessions.create({"customer": customer.id}).flow is None


def test_the_confirm_page_shows_the_flows_plan_not_the_current_one(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer, price=catalog.max)
    session = flow_portal(client, customer, confirm_flow(subscription, catalog.pro))
    page = browser.get(session.url)
    assert page.status == 200
    assert "Confirm your plan change" in page.text
    assert 'id="current-plan">Max · 1 × $99.00' in page.text
    assert 'id="new-plan">Pro · 1 × $29.00' in page.text
    assert f'name="price" id="price" value="{catalog.pro.id}"' in page.text
    assert 'id="due-today">$0.00' in page.text  # a downgrade bills nothing today
    assert 'id="confirm"' in page.text


def test_confirming_an_upgrade_bills_the_prorated_difference_and_returns(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer)
    double.advance(10 * DAY)
    session = flow_portal(client, customer, confirm_flow(subscription, catalog.max, quantity=2))
    left, length = Fraction(FEB_1 - (START + 10 * DAY)), Fraction(FEB_1 - START)
    expected = half_up(2 * 9900 * left / length) - half_up(2900 * left / length)
    page = browser.get(session.url)
    assert f'id="due-today">${expected // 100}.{expected % 100:02d}' in page.text
    before = len(double.events)

    answer = browser.post(f"/portal/{session.id}/confirm", {})
    assert (answer.status, answer.location) == (303, RETURN_URL)
    changed = client.v1.subscriptions.retrieve(subscription.id)
    item = changed["items"].data[0]
    assert (item.price.id, item.quantity) == (catalog.max.id, 2)
    invoice = client.v1.invoices.retrieve(changed.latest_invoice)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_update", "paid", expected)
    types = event_types(double, before)
    assert types.index("customer.subscription.updated") < types.index("invoice.paid")

    # Confirmed once: a second confirm changes nothing, and the session now opens on the portal's home page.
    again = browser.post(f"/portal/{session.id}/confirm", {})
    assert "already been confirmed" in browser.get(again.location).text
    assert len(client.v1.invoices.list({"subscription": subscription.id}).data) == 2
    assert "Manage your subscription" in browser.get(session.url).text


def test_confirming_a_downgrade_changes_the_plan_without_an_invoice(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer, price=catalog.max)
    after = {"type": "hosted_confirmation", "hosted_confirmation": {"custom_message": "See you on Pro."}}
    session = flow_portal(client, customer, confirm_flow(subscription, catalog.pro, after=after))
    before = len(double.events)
    answer = browser.post(f"/portal/{session.id}/confirm", {})
    assert answer.location == f"/portal/{session.id}/confirmed"
    assert "See you on Pro." in browser.get(answer.location).text
    changed = client.v1.subscriptions.retrieve(subscription.id)
    assert changed["items"].data[0].price.id == catalog.pro.id
    assert changed.latest_invoice == subscription.latest_invoice
    assert event_types(double, before) == ["customer.subscription.updated"]


def test_the_portal_homepage_is_the_default_after_completion(client, double, catalog, customer, browser):
    subscription = subscribed(client, double, catalog, customer)
    flow = confirm_flow(subscription, catalog.max)
    del flow["after_completion"]
    session = flow_portal(client, customer, flow)
    assert session.flow.after_completion.type == "portal_homepage"
    answer = browser.post(f"/portal/{session.id}/confirm", {})
    assert answer.location.startswith(f"/portal/{session.id}?message=")
    assert "Your plan has been updated." in browser.get(answer.location).text


@pytest.mark.parametrize(
    ("change", "status", "code", "param"),
    [
        (lambda flow, other: flow["subscription_update_confirm"].update(subscription="sub_missing"), 404,
         "resource_missing", "flow_data[subscription_update_confirm][subscription]"),
        (lambda flow, other: flow["subscription_update_confirm"]["items"][0].update(id="si_missing"), 400,
         "resource_missing", "flow_data[subscription_update_confirm][items][0][id]"),
        (lambda flow, other: flow["subscription_update_confirm"]["items"][0].update(price="price_missing"), 404,
         "resource_missing", "flow_data[subscription_update_confirm][items][0][price]"),
        (lambda flow, other: flow["subscription_update_confirm"].update(subscription=other), 400, None,
         "flow_data[subscription_update_confirm][subscription]"),
        (lambda flow, other: flow["subscription_update_confirm"].pop("items"), 400, "parameter_missing",
         "flow_data[subscription_update_confirm][items]"),
        (lambda flow, other: flow.update(type="teleport"), 400, None, "flow_data[type]"),
        (lambda flow, other: flow.update(after_completion={"type": "redirect"}), 400, "parameter_missing",
         "flow_data[after_completion][redirect][return_url]"),
    ],
    ids=["unknown subscription", "unknown item", "unknown price", "another customer's", "no items", "bad type",
         "redirect without url"],
)  # fmt: skip
def test_flow_data_is_checked_as_stripe_checks_it(client, double, catalog, customer, change, status, code, param):
    subscription = subscribed(client, double, catalog, customer)
    other = subscribed(client, double, catalog, client.v1.customers.create({"email": "other@example.com"}))
    flow = confirm_flow(subscription, catalog.max)
    change(flow, other.id)
    with pytest.raises(stripe.StripeError) as refused:
        flow_portal(client, customer, flow)
    assert refused.value.http_status == status
    assert (refused.value.code, refused.value.param) == (code, param)
    assert not [portal for portal in double.store.all("billing_portal.session") if portal["flow"] is not None]
