"""The double answers in Stripe's shapes: every object and event of the payment flows, checked field by field.

Each flow runs as Sigora drives it (the same calls and parameters as ``billing/stripe_gateway.py``, the hosted
pages a person uses, the control calls tests use); every JSON body the double answers and every webhook it
sends is then checked against the ``stripe`` library's declared fields, types and enum values.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Literal

import pytest
import stripe

from stripe_double import StripeDouble

from .conftest import START, Browser, Receiver
from .shapes import fields, shape_errors

DAY = 86400
SUCCESS_URL = "http://app.test/settings/billing/?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "http://app.test/settings/billing/"


class Flows:
    """Sigora's payment flows against the double, each for a customer of its own."""

    def __init__(self, client: stripe.StripeClient, double: StripeDouble, browser: Browser) -> None:
        self.client = client
        self.double = double
        self.browser = browser
        self.workspaces = self.purchases = 0
        self.prices = self.catalog_synced()

    # --- as billing.stripe_gateway calls Stripe -----------------------------------------------------------

    def catalog_synced(self) -> dict[str, str]:
        prices = {}
        for key, name, cents, recurring in (
            ("plan_pro", "Pro", 2900, True),
            ("plan_max", "Max", 9900, True),
            ("pack_50k", "50K credits", 1000, False),
        ):
            product = self.client.v1.products.create({"name": name, "metadata": {"key": key}}, {"idempotency_key": key})
            params = {"product": product.id, "unit_amount": cents, "currency": "usd", "lookup_key": key}
            if recurring:
                params["recurring"] = {"interval": "month"}
            prices[key] = self.client.v1.prices.create(params).id
            self.client.v1.products.update(product.id, {"name": name, "metadata": {"key": key, "synced": "1"}})
        listed = self.client.v1.prices.list(
            {"lookup_keys": list(prices), "active": True, "limit": 100, "expand": ["data.product"]}
        )
        assert {price.lookup_key for price in listed.data} == set(prices)
        old = self.client.v1.prices.create({"product": listed.data[0].product.id, "unit_amount": 1, "currency": "usd"})
        self.client.v1.prices.update(old.id, {"active": False})
        return prices

    def customer(self) -> str:
        self.workspaces += 1
        workspace = str(self.workspaces)
        customer = self.client.v1.customers.create(
            {
                "email": f"owner{workspace}@example.com",
                "name": f"Workspace {workspace}",
                "metadata": {"workspace_id": workspace},
            },
            {"idempotency_key": f"sigora-customer-{workspace}"},
        )
        return customer.id

    def checkout(self, customer: str, mode: str, price: str, quantity: int = 1, anchor: int | None = None) -> str:
        self.purchases += 1
        metadata = {"workspace_id": "1", "purchase_id": str(self.purchases), "plan": "pro"}
        params = {
            "mode": mode,
            "customer": customer,
            "client_reference_id": "1",
            "line_items": [{"price": price, "quantity": quantity}],
            "success_url": SUCCESS_URL,
            "cancel_url": CANCEL_URL,
            "metadata": metadata,
        }
        if mode == "payment":
            params["payment_intent_data"] = {"setup_future_usage": "off_session", "metadata": metadata}
        else:
            params["subscription_data"] = {"metadata": {"workspace_id": "1"}}
            if anchor is not None:  # a paid plan without a subscription keeps its period: billed up to its end
                params["subscription_data"] |= {
                    "billing_cycle_anchor": anchor,
                    "proration_behavior": "create_prorations",
                }
        key = f"sigora-checkout-{self.purchases}"
        session = self.client.v1.checkout.sessions.create(params, {"idempotency_key": key})
        assert self.browser.get(session.url).status == 200
        return session.id

    def fulfilled(self, session_id: str) -> stripe.checkout.Session:
        """What fulfilment reads: the session, its payment or subscription and invoice, the charge."""
        client = self.client
        session = client.v1.checkout.sessions.retrieve(session_id)
        client.v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items"]})
        client.v1.checkout.sessions.list({"status": "complete", "created": {"gte": START}, "limit": 100})
        if session.payment_intent:
            intent = client.v1.payment_intents.retrieve(session.payment_intent)
            if intent.latest_charge:
                client.v1.charges.retrieve(intent.latest_charge, {"expand": ["refunds"]})
            if intent.payment_method and intent.status == "succeeded":
                client.v1.customers.update(
                    session.customer, {"invoice_settings": {"default_payment_method": intent.payment_method}}
                )
        if session.subscription:
            self.subscription_read(session.subscription)
        return session

    def subscription_read(self, subscription_id: str) -> stripe.Subscription:
        subscription = self.client.v1.subscriptions.retrieve(subscription_id)
        self.client.v1.subscriptions.retrieve(subscription_id, {"expand": ["latest_invoice"]})
        invoice = self.client.v1.invoices.retrieve(subscription.latest_invoice, {"expand": ["payments"]})
        for line in invoice.lines.data:
            self.client.v1.prices.retrieve(line.pricing.price_details.price)
        for payment in invoice.payments.data:
            self.client.v1.payment_intents.retrieve(payment.payment.payment_intent)
        return subscription

    def portal(self, customer: str) -> str:
        session = self.client.v1.billing_portal.sessions.create(
            {"customer": customer, "return_url": "http://app.test/settings/billing/"}
        )
        assert self.browser.get(session.url).status == 200
        return session.id

    def portal_form(self, portal: str, action: str, **form: str) -> None:
        answer = self.browser.post(f"/portal/{portal}/{action}", form)
        assert answer.status == 303
        assert "Error" not in self.browser.get(answer.location).text

    def subscribed(self, quantity: int = 1) -> tuple[str, str]:
        customer = self.customer()
        session = self.checkout(customer, "subscription", self.prices["plan_pro"], quantity)
        self.double.pay_checkout(session)
        return customer, self.fulfilled(session).subscription

    def off_session(self, customer: str, key: str) -> None:
        """An auto top-up: the saved default card, charged without the customer."""
        method = self.client.v1.customers.retrieve(customer).invoice_settings.default_payment_method
        try:
            intent = self.client.v1.payment_intents.create(
                {
                    "amount": 1000,
                    "currency": "usd",
                    "customer": customer,
                    "payment_method": method,
                    "off_session": True,
                    "confirm": True,
                    "description": "Auto top-up: 50K credits",
                    "metadata": {"workspace_id": "1", "purchase_id": key},
                },
                {"idempotency_key": f"sigora-auto-topup-{key}"},
            )
        except stripe.CardError as error:
            intent = error.error.payment_intent
        self.client.v1.payment_intents.retrieve(intent.id)

    # --- the flows ------------------------------------------------------------------------------------------

    def top_up_paid(self, card: str = "success") -> str:
        customer = self.customer()
        session = self.checkout(customer, "payment", self.prices["pack_50k"])
        self.double.pay_checkout(session, card)
        if card == "authenticate":
            self.double.complete_authentication(session)
        elif card == "delayed":
            self.fulfilled(session)
            self.double.settle_delayed(session)
        return self.fulfilled(session).payment_intent

    def top_up_declined_then_paid(self) -> None:
        customer = self.customer()
        session = self.checkout(customer, "payment", self.prices["pack_50k"])
        self.double.pay_checkout(session, "decline")
        self.client.v1.checkout.sessions.retrieve(session)
        self.double.pay_checkout(session, "success")
        self.fulfilled(session)

    def top_up_expired(self) -> None:
        session = self.checkout(self.customer(), "payment", self.prices["pack_50k"])
        self.client.v1.checkout.sessions.expire(session)
        self.client.v1.checkout.sessions.retrieve(session)

    def top_up_refunded_in_part_then_in_full(self) -> None:
        intent = self.client.v1.payment_intents.retrieve(self.top_up_paid())
        self.client.v1.refunds.create({"payment_intent": intent.id, "amount": 400})
        self.client.v1.charges.retrieve(intent.latest_charge, {"expand": ["refunds"]})
        self.client.v1.refunds.create({"charge": intent.latest_charge})
        self.client.v1.charges.retrieve(intent.latest_charge, {"expand": ["refunds"]})
        self.client.v1.refunds.list({"charge": intent.latest_charge})

    def disputed(self, won: bool) -> None:
        intent = self.client.v1.payment_intents.retrieve(self.top_up_paid())
        dispute = self.double.dispute(intent.latest_charge)
        self.client.v1.disputes.retrieve(dispute["id"])
        self.client.v1.charges.retrieve(intent.latest_charge)
        self.double.close_dispute(dispute["id"], won=won)
        self.client.v1.disputes.retrieve(dispute["id"])
        self.client.v1.disputes.list({"charge": intent.latest_charge})

    def subscription_created(self) -> None:
        self.subscribed(quantity=2)

    def subscription_anchored(self) -> None:
        customer = self.customer()
        session = self.checkout(customer, "subscription", self.prices["plan_max"], anchor=self.double.now() + 9 * DAY)
        self.double.pay_checkout(session)
        subscription = self.fulfilled(session).subscription
        self.double.renew(subscription)
        self.subscription_read(subscription)

    def renewal_paid(self) -> None:
        _, subscription = self.subscribed()
        self.double.renew(subscription)
        self.subscription_read(subscription)

    def renewal_failed_then_paid(self) -> None:
        _, subscription = self.subscribed()
        self.double.renew(subscription, card="decline")
        invoice = self.subscription_read(subscription).latest_invoice
        self.client.v1.invoices.list({"subscription": subscription, "status": "open"})
        self.client.v1.invoices.pay(invoice)
        self.subscription_read(subscription)

    def renewal_needing_authentication(self) -> None:
        customer, subscription = self.subscribed()
        self.double.set_card(customer, "authenticate")
        self.double.renew(subscription)
        self.subscription_read(subscription)

    def seats_added(self) -> None:
        customer, subscription = self.subscribed(quantity=2)
        portal = self.portal(customer)
        self.double.advance(10 * DAY)
        self.portal_form(portal, "update", subscription=subscription, price=self.prices["plan_pro"], quantity="5")
        self.subscription_read(subscription)

    def upgraded(self) -> None:
        customer, subscription = self.subscribed()
        portal = self.portal(customer)
        self.double.advance(12 * DAY)
        self.portal_form(portal, "update", subscription=subscription, price=self.prices["plan_max"], quantity="1")
        self.subscription_read(subscription)

    def changed_through_a_flow(self, price: str) -> None:
        """A plan card's deep link: the portal opened on the confirm page of one change, then confirmed."""
        customer, subscription = self.subscribed()
        item = self.client.v1.subscriptions.retrieve(subscription)["items"].data[0].id
        session = self.client.v1.billing_portal.sessions.create(
            {
                "customer": customer,
                "return_url": "http://app.test/settings/billing/",
                "flow_data": {
                    "type": "subscription_update_confirm",
                    "subscription_update_confirm": {
                        "subscription": subscription,
                        "items": [{"id": item, "price": self.prices[price], "quantity": 1}],
                    },
                    "after_completion": {"type": "redirect", "redirect": {"return_url": CANCEL_URL}},
                },
            }
        )
        assert self.browser.get(session.url).status == 200
        self.double.advance(3 * DAY)
        assert self.browser.post(f"/portal/{session.id}/confirm", {}).location == CANCEL_URL
        self.subscription_read(subscription)

    def downgraded(self) -> None:
        customer = self.customer()
        session = self.checkout(customer, "subscription", self.prices["plan_max"])
        self.double.pay_checkout(session)
        subscription = self.fulfilled(session).subscription
        portal = self.portal(customer)
        self.double.advance(5 * DAY)
        self.portal_form(portal, "update", subscription=subscription, price=self.prices["plan_pro"], quantity="1")
        self.double.renew(subscription)
        self.subscription_read(subscription)

    def canceled(self) -> None:
        customer, subscription = self.subscribed()
        portal = self.portal(customer)
        self.portal_form(portal, "cancel", subscription=subscription)
        self.portal_form(portal, "reactivate", subscription=subscription)
        self.portal_form(portal, "cancel", subscription=subscription)
        self.double.renew(subscription)
        self.client.v1.subscriptions.retrieve(subscription)
        self.client.v1.subscriptions.list({"customer": customer, "status": "all"})
        _, other = self.subscribed()
        self.client.v1.subscriptions.cancel(other)

    def auto_top_up_declined_then_succeeded(self) -> None:
        intent = self.client.v1.payment_intents.retrieve(self.top_up_paid())
        self.double.set_card(intent.customer, "decline")
        self.off_session(intent.customer, "1")
        self.double.set_card(intent.customer, "success")
        self.off_session(intent.customer, "2")
        self.client.v1.payment_intents.list({"customer": intent.customer})
        self.client.v1.charges.list({"customer": intent.customer})
        self.client.v1.customers.payment_methods.list(intent.customer)

    def auto_top_up_needing_authentication(self) -> None:
        intent = self.client.v1.payment_intents.retrieve(self.top_up_paid())
        self.double.set_card(intent.customer, "authenticate")
        self.off_session(intent.customer, "3")


FLOWS: list[Callable[[Flows], object]] = [
    Flows.top_up_paid,
    lambda flows: flows.top_up_paid("authenticate"),
    lambda flows: flows.top_up_paid("delayed"),
    Flows.top_up_declined_then_paid,
    Flows.top_up_expired,
    Flows.top_up_refunded_in_part_then_in_full,
    lambda flows: flows.disputed(won=True),
    lambda flows: flows.disputed(won=False),
    Flows.subscription_created,
    Flows.subscription_anchored,
    Flows.renewal_paid,
    Flows.renewal_failed_then_paid,
    Flows.renewal_needing_authentication,
    Flows.seats_added,
    Flows.upgraded,
    lambda flows: flows.changed_through_a_flow("plan_max"),
    Flows.downgraded,
    Flows.canceled,
    Flows.auto_top_up_declined_then_succeeded,
    Flows.auto_top_up_needing_authentication,
]


# Events that only the flows above, between them, lead to.
FLOWS_EVENTS = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.expired",
    "payment_intent.requires_action",
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "charge.refunded",
    "refund.created",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
}


@pytest.fixture
def answers(double: StripeDouble, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Every ``/v1`` answer the double gives from now on: (request, JSON body)."""
    recorded: list[tuple[str, object]] = []
    handle = double.api.handle

    def recording(method, path, query, body, headers):
        response = handle(method, path, query, body, headers)
        recorded.append((f"{method} {path}", json.loads(response.body)))
        return response

    monkeypatch.setattr(double.api, "handle", recording)
    return recorded


def test_every_answer_and_event_of_the_payment_flows_has_stripes_shape(
    client: stripe.StripeClient, double: StripeDouble, receiver: Receiver, browser: Browser, answers
):
    flows = Flows(client, double, browser)
    for flow in FLOWS:
        flow(flows)
    double.wait_for_deliveries()
    sent = [request.event for request in receiver.received]
    assert {event["id"] for event in sent} == {event["id"] for event in double.events}
    with double.store.lock:
        stored = list(double.store.objects)
    assert {event["type"] for event in sent} >= FLOWS_EVENTS  # each flow went where it should
    assert any("error" in body and body["error"].get("payment_intent") for _, body in answers)  # the 402s too

    checked: dict[str, str] = {}  # each distinct JSON body once, with the first place it came from
    for where, value in [
        *answers,
        *((f"event {event['type']}", event) for event in sent),
        *((f"stored {object_id}", double.object(object_id)) for object_id in stored),
    ]:
        checked.setdefault(json.dumps(value, sort_keys=True), where)
    found: dict[str, list[str]] = defaultdict(list)
    for body, where in checked.items():
        for problem in shape_errors(json.loads(body), where):
            found[re.sub(r"\[\d+\]", "[]", problem)].append(where)  # one line for a mistake wherever it recurs
    report = [f"{problem}  ({len(seen)}×, first in {seen[0]})" for problem, seen in sorted(found.items())]
    assert not report, f"{len(report)} ways the double's JSON differs from Stripe's:\n" + "\n".join(report)


# --- the checker itself -------------------------------------------------------------------------------------


def _event(session: dict, **changes: object) -> dict:
    event = {
        "id": "evt_1",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": START,
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    return {**event, **changes}


def _set(path: str, value: object) -> Callable[[dict], dict]:
    def change(session: dict) -> dict:
        *parents, name = path.split(".")
        target = session
        for parent in parents:
            target = target[parent]
        target[name] = value
        return session

    return change


def _drop(name: str) -> Callable[[dict], dict]:
    return lambda session: {key: value for key, value in session.items() if key != name}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("surprise", 1), "checkout.session.surprise: not a field of Session"),
        (_drop("created"), "checkout.session.created: missing, where Session always has it"),
        (
            _set("invoice_creation.invoice_data", None),
            "checkout.session.invoice_creation.invoice_data: null, where the library declares "
            "Session.InvoiceCreation.InvoiceData",
        ),
        (_set("invoice_creation.invoice_data.footnote", "x"), "invoice_data.footnote: not a field of Session.Invoice"),
        (_set("invoice_creation.enabled", None), "checkout.session.invoice_creation.enabled: null, where the library"),
        (_set("ui_mode", "hosted"), "checkout.session.ui_mode: 'hosted' is not one of 'elements', 'embedded_page'"),
        (_set("object", "checkout_session"), "the library knows no object 'checkout_session'"),
        (_set("amount_total", "1000"), "checkout.session.amount_total: '1000', where the library declares int"),
        (_set("livemode", 0), "checkout.session.livemode: 0, where the library declares bool"),
        (_set("metadata", {"plan": 1}), "checkout.session.metadata.plan: 1, where the library declares str"),
        (_set("payment_method_types", ["card", 3]), "checkout.session.payment_method_types[1]: 3, where the library"),
        (_set("customer", 42), "checkout.session.customer: 42, where the library declares Customer"),
        (_set("customer", {"object": "customer", "id": "cus_1"}), "customer.created: missing, where Customer always"),
        (_set("customer", {"object": "price", "id": "x"}), "customer.object: 'price', where Customer is expected"),
        (lambda session: _event(session, type="checkout.session.done"), "event.type: 'checkout.session.done' is not"),
        (lambda session: _event(_set("surprise", 1)(session)), "checkout.session.surprise: not a field of Session"),
        (
            lambda session: _event(session, data={"object": session, "previous_attributes": {"status": 3}}),
            "checkout.session previous_attributes.status: 3 is not one of",
        ),
        (
            lambda session: {"object": "list", "data": [session], "has_more": False, "url": "/", "count": 1},
            "answer.count: not a field of a list",
        ),
        (
            lambda session: {"error": {"type": "card_error", "payment_intent": {"object": "payment_intent"}}},
            "payment_intent.amount: missing, where PaymentIntent always has it",
        ),
    ],
)
def test_the_checker_names_each_kind_of_mismatch(client, double, catalog, customer, change, expected):
    session = client.v1.checkout.sessions.create(
        {"mode": "payment", "customer": customer.id, "line_items": [{"price": catalog.pack.id, "quantity": 1}]}
    )
    shown = double.object(session.id)
    assert shape_errors(shown, "answer") == []
    assert shape_errors(_event(shown), "answer") == []
    problems = shape_errors(change(shown), "answer")
    assert any(expected in problem for problem in problems), problems


def test_the_checker_reads_every_field_the_library_declares():
    session = fields(stripe.checkout.Session)
    assert session["ui_mode"] == Literal["elements", "embedded_page", "form", "hosted_page"] | str | None
    assert session["customer"] == str | stripe.Customer | None  # the library's "Customer", imported for type checkers
    assert fields(stripe.Charge)["refunds"] == stripe.ListObject[stripe.Refund] | None
