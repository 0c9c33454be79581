"""Checkout Sessions through the real library, paid on the hosted test page over real HTTP."""

from __future__ import annotations

import pytest
import stripe

from stripe_double.subscriptions import add_months

from .conftest import START, event_types

SUCCESS = "http://app.test/billing/done?session={CHECKOUT_SESSION_ID}"
CANCEL = "http://app.test/billing/"


def buy_pack(client, catalog, **extra):
    params = {
        "mode": "payment",
        "line_items": [{"price": catalog.pack.id, "quantity": 2}],
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "client_reference_id": "workspace-7",
        "metadata": {"pack": "50k"},
        **extra,
    }
    return client.v1.checkout.sessions.create(params)


def subscribe(client, catalog, customer, quantity=1):
    return client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": catalog.pro.id, "quantity": quantity}],
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            "subscription_data": {"metadata": {"workspace": "7"}},
        }
    )


def test_a_new_session_has_the_fields_of_the_api(client, double, catalog):
    session = buy_pack(client, catalog, customer_email="buyer@example.com")
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.url == f"{double.url}/checkout/{session.id}"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_total, session.currency) == (2000, "usd")
    assert (session.client_reference_id, session.metadata.to_dict()) == ("workspace-7", {"pack": "50k"})
    assert (session.customer, session.payment_intent, session.subscription, session.invoice) == (None, None, None, None)
    assert session.expires_at == START + 24 * 3600
    assert session.created == START


def test_the_hosted_page_shows_what_is_bought_and_its_buttons(client, catalog, browser):
    session = buy_pack(client, catalog)
    page = browser.get(session.url)
    assert page.status == 200
    assert "Test checkout (offline Stripe double)" in page.text
    assert "50K credits" in page.text
    assert "$20.00" in page.text
    for element in ('id="pay"', 'id="decline"', 'id="authenticate"', 'id="delayed"', 'id="cancel"'):
        assert element in page.text
    assert "4242 4242 4242 4242" in page.text
    assert f'href="{CANCEL}"' in page.text


def test_pay_completes_a_payment_session_and_saves_the_card(client, double, catalog, browser, receiver):
    session = buy_pack(
        client,
        catalog,
        customer_email="buyer@example.com",
        payment_intent_data={"setup_future_usage": "off_session", "metadata": {"pack": "50k"}},
    )
    answer = browser.post(f"/checkout/{session.id}/pay", {"card": "success"})
    assert answer.status == 303
    assert answer.location == f"http://app.test/billing/done?session={session.id}"

    done = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent", "line_items"]})
    assert (done.status, done.payment_status, done.url) == ("complete", "paid", None)
    assert done.customer.startswith("cus_")
    assert done.customer_details.email == "buyer@example.com"
    assert done.line_items.data[0].price.id == catalog.pack.id
    intent = done.payment_intent
    assert (intent.status, intent.amount_received, intent.metadata.to_dict()) == ("succeeded", 2000, {"pack": "50k"})
    assert intent.setup_future_usage == "off_session"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.amount) == ("succeeded", True, 2000)
    assert charge.receipt_url == f"{double.url}/receipts/{charge.id}"
    receipt = browser.get(charge.receipt_url)
    assert receipt.status == 200
    assert "$20.00" in receipt.text
    saved = client.v1.customers.payment_methods.list(done.customer)
    assert [method.id for method in saved.data] == [intent.payment_method]

    types = event_types(double)
    assert (
        types.index("payment_intent.succeeded")
        < types.index("charge.succeeded")
        < types.index("checkout.session.completed")
    )
    completed = next(e for e in double.events if e["type"] == "checkout.session.completed")
    assert completed["data"]["object"]["payment_status"] == "paid"
    double.wait_for_deliveries()
    assert "checkout.session.completed" in receiver.types()


def test_a_guest_payment_without_saving_makes_no_customer(client, double, catalog):
    session = buy_pack(client, catalog)
    double.pay_checkout(session.id)
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer is None
    assert done.customer_details.email
    assert done.payment_status == "paid"


def test_a_declined_card_keeps_the_session_open_and_can_retry(client, double, catalog, browser):
    session = buy_pack(client, catalog)
    answer = browser.post(f"/checkout/{session.id}/pay", {"card": "decline"})
    assert answer.status == 303
    assert answer.location == f"/checkout/{session.id}?error=declined"
    page = browser.get(answer.location)
    assert "Your card was declined" in page.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert "payment_intent.payment_failed" in event_types(double)
    assert "checkout.session.completed" not in event_types(double)

    retry = browser.post(f"/checkout/{session.id}/pay", {"card": "success"})
    assert retry.location.startswith("http://app.test/billing/done")
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")


def test_a_card_needing_authentication_goes_through_the_authenticate_page(client, double, catalog, browser):
    session = buy_pack(client, catalog)
    answer = browser.post(f"/checkout/{session.id}/pay", {"card": "authenticate"})
    assert answer.location == f"/checkout/{session.id}/authenticate"
    page = browser.get(answer.location)
    assert 'id="complete"' in page.text
    assert 'id="fail"' in page.text
    intent = client.v1.payment_intents.retrieve(client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    assert intent.status == "requires_action"

    failed = browser.post(answer.location, {"result": "fail"})
    assert failed.location == f"/checkout/{session.id}?error=authentication_failed"
    assert "unable to authenticate" in browser.get(failed.location).text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    again = browser.post(f"/checkout/{session.id}/pay", {"card": "authenticate"})
    done = browser.post(again.location, {"result": "complete"})
    assert done.location.startswith("http://app.test/billing/done")
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_delayed_payment_completes_unpaid_then_settles(client, double, catalog, browser):
    session = buy_pack(client, catalog)
    answer = browser.post(f"/checkout/{session.id}/pay", {"card": "delayed"})
    assert answer.location.startswith("http://app.test/billing/done")
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert client.v1.payment_intents.retrieve(done.payment_intent).status == "processing"
    completed = next(e for e in double.events if e["type"] == "checkout.session.completed")
    assert completed["data"]["object"]["payment_status"] == "unpaid"

    double.settle_delayed(session.id, succeed=True)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert event_types(double)[-1] == "checkout.session.async_payment_succeeded"


def test_a_delayed_payment_can_fail(client, double, catalog):
    session = buy_pack(client, catalog)
    double.pay_checkout(session.id, card="delayed")
    double.settle_delayed(session.id, succeed=False)
    assert event_types(double)[-1] == "checkout.session.async_payment_failed"
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.payment_status == "unpaid"
    assert client.v1.payment_intents.retrieve(done.payment_intent).status == "requires_payment_method"


def test_subscription_mode_makes_an_active_subscription_and_a_paid_invoice(client, double, catalog, customer, browser):
    session = subscribe(client, catalog, customer, quantity=3)
    assert session.amount_total == 3 * 2900
    assert browser.post(f"/checkout/{session.id}/pay", {"card": "success"}).status == 303

    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status, done.customer) == ("complete", "paid", customer.id)
    assert done.payment_intent is None
    subscription = client.v1.subscriptions.retrieve(done.subscription)
    assert (subscription.status, subscription.customer) == ("active", customer.id)
    assert subscription.metadata.to_dict() == {"workspace": "7"}
    item = subscription["items"].data[0]
    assert (item.price.id, item.quantity) == (catalog.pro.id, 3)
    assert (item.current_period_start, item.current_period_end) == (START, add_months(START, 1))
    assert subscription.default_payment_method.startswith("pm_")
    assert subscription.latest_invoice == done.invoice

    invoice = client.v1.invoices.retrieve(done.invoice, {"expand": ["payments"]})
    assert (invoice.status, invoice.billing_reason, invoice.amount_paid) == ("paid", "subscription_create", 8700)
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.parent.subscription_details.metadata.to_dict() == {"workspace": "7"}
    line = invoice.lines.data[0]
    assert (line.period.start, line.period.end, line.quantity) == (START, add_months(START, 1), 3)
    assert line.pricing.price_details.price == catalog.pro.id
    assert invoice.payments.data[0].payment.payment_intent.startswith("pi_")
    assert invoice.hosted_invoice_url == f"{double.url}/invoices/{invoice.id}"
    hosted = browser.get(invoice.hosted_invoice_url)
    assert hosted.status == 200
    assert "$87.00" in hosted.text

    types = event_types(double)
    assert types.index("customer.subscription.created") < types.index("invoice.paid")
    assert types.index("invoice.paid") < types.index("checkout.session.completed")


def test_subscription_checkout_without_a_customer_creates_one(client, double, catalog):
    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer_email": "new@example.com",
            "line_items": [{"price": catalog.pro.id, "quantity": 1}],
        }
    )
    double.pay_checkout(session.id)
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert client.v1.customers.retrieve(done.customer).email == "new@example.com"


def test_subscription_checkout_with_authentication(client, double, catalog, customer):
    session = subscribe(client, catalog, customer)
    double.pay_checkout(session.id, card="authenticate")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    double.complete_authentication(session.id, succeed=True)
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.status == "complete"
    assert client.v1.subscriptions.retrieve(done.subscription).status == "active"


def test_a_delayed_subscription_payment_that_fails_leaves_the_subscription_past_due(client, double, catalog, customer):
    session = subscribe(client, catalog, customer)
    double.pay_checkout(session.id, card="delayed")
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert client.v1.invoices.retrieve(done.invoice).status == "open"
    double.settle_delayed(session.id, succeed=False)
    assert client.v1.subscriptions.retrieve(done.subscription).status == "past_due"
    assert "invoice.payment_failed" in event_types(double)
    assert event_types(double)[-1] == "checkout.session.async_payment_failed"


def test_a_completed_session_cannot_be_paid_again(client, double, catalog, browser):
    session = buy_pack(client, catalog)
    double.pay_checkout(session.id)
    page = browser.get(f"/checkout/{session.id}")
    assert "Checkout complete" in page.text
    assert browser.post(f"/checkout/{session.id}/pay", {"card": "success"}).status == 409
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)


def test_sessions_expire_on_request_and_with_time(client, double, catalog, browser):
    first = buy_pack(client, catalog)
    expired = client.v1.checkout.sessions.expire(first.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert "expired" in browser.get(f"/checkout/{first.id}").text
    second = buy_pack(client, catalog, expires_at=START + 3600)
    double.advance(3600)
    assert client.v1.checkout.sessions.retrieve(second.id).status == "expired"
    assert event_types(double).count("checkout.session.expired") == 2


def test_sessions_list_by_status_and_creation_time(client, double, catalog):
    old = buy_pack(client, catalog)
    double.pay_checkout(old.id)
    double.advance(100)
    new = buy_pack(client, catalog)
    double.pay_checkout(new.id)
    open_one = buy_pack(client, catalog)
    completed = client.v1.checkout.sessions.list({"status": "complete", "created": {"gte": START + 100}})
    assert [s.id for s in completed.data] == [new.id]
    assert [s.id for s in client.v1.checkout.sessions.list({"status": "open"}).data] == [open_one.id]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"mode": "payment", "line_items": [{"price": "RECURRING", "quantity": 1}]}, "line_items[0][price]"),
        ({"mode": "subscription", "line_items": [{"price": "ONE_TIME", "quantity": 1}]}, "line_items[0][price]"),
        ({"mode": "payment"}, "line_items"),
        ({"line_items": [{"price": "ONE_TIME", "quantity": 1}]}, "mode"),
        (
            {"mode": "payment", "line_items": [{"price": "ONE_TIME", "quantity": 1}], "expires_at": START + 60},
            "expires_at",
        ),
    ],
)
def test_invalid_sessions_are_refused(client, catalog, params, param):
    for item in params.get("line_items", []):
        item["price"] = {"RECURRING": catalog.pro.id, "ONE_TIME": catalog.pack.id}[item["price"]]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(params)
    assert caught.value.http_status == 400
    assert caught.value.param == param


def test_customer_and_customer_email_together_are_refused(client, catalog, customer):
    with pytest.raises(stripe.InvalidRequestError):
        buy_pack(client, catalog, customer=customer.id, customer_email="x@example.com")


def test_price_data_line_items_make_an_inline_price(client, double):
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 4500, "product_data": {"name": "Custom pack"}},
                    "quantity": 1,
                }
            ],
        }
    )
    assert session.amount_total == 4500
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert items.data[0].description == "Custom pack"
    assert items.data[0].price.active is False
