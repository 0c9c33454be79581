"""Stripe's wire protocol as the real library sees it: auth, errors, idempotency, lists, expand, encoding."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import stripe

from stripe_double import API_VERSION, StripeDouble
from stripe_double.encoding import decode

from .conftest import API_KEY, START


def raw(double: StripeDouble, method: str, path: str, body: str = "", headers: dict | None = None):
    request = urllib.request.Request(double.url + path, data=body.encode() if method == "POST" else None, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_pinned_version_is_the_librarys():
    assert API_VERSION == stripe._api_version._ApiVersion.CURRENT == "2026-10-28.endive"


def test_a_request_without_the_key_is_refused_with_401(double):
    status, _, body = raw(double, "GET", "/v1/customers")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in body["error"]["message"]


def test_a_wrong_key_is_refused_through_the_library(double):
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": double.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError) as caught:
        wrong.v1.customers.list()
    assert caught.value.http_status == 401


def test_basic_auth_with_the_key_as_user_is_accepted(double):
    import base64

    token = base64.b64encode(f"{API_KEY}:".encode()).decode()
    status, _, body = raw(double, "GET", "/v1/customers", headers={"Authorization": f"Basic {token}"})
    assert status == 200
    assert body["object"] == "list"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.v1.customers.retrieve("cus_missing"),
        lambda c: c.v1.checkout.sessions.retrieve("cs_test_missing"),
        lambda c: c.v1.subscriptions.retrieve("sub_missing"),
        lambda c: c.v1.invoices.retrieve("in_missing"),
        lambda c: c.v1.payment_intents.retrieve("pi_missing"),
        lambda c: c.v1.charges.retrieve("ch_missing"),
        lambda c: c.v1.prices.retrieve("price_missing"),
        lambda c: c.v1.products.retrieve("prod_missing"),
        lambda c: c.v1.events.retrieve("evt_missing"),
    ],
)
def test_unknown_ids_answer_404_resource_missing(client, call):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        call(client)
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert "No such" in caught.value.user_message


def test_an_id_of_another_kind_is_not_found(client, customer):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.retrieve(customer.id)
    assert caught.value.http_status == 404


def test_an_unknown_url_is_404(double):
    status, _, body = raw(double, "GET", "/v1/nothing_here", headers={"Authorization": f"Bearer {API_KEY}"})
    assert status == 404
    assert "Unrecognized request URL" in body["error"]["message"]


def test_missing_required_param_is_400_with_the_param(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create({"currency": "usd", "unit_amount": 100})
    assert caught.value.http_status == 400
    assert caught.value.param == "product"
    assert caught.value.code == "parameter_missing"


def test_objects_carry_stripe_common_fields(client, customer):
    assert customer.id.startswith("cus_")
    assert customer.object == "customer"
    assert customer.created == START
    assert customer.livemode is False


def test_customer_update_sets_the_default_payment_method_and_metadata(client, double, customer):
    [method] = double.set_card(customer.id, "success")
    updated = client.v1.customers.update(
        customer.id,
        {"invoice_settings": {"default_payment_method": method["id"]}, "metadata": {"workspace": "7"}},
    )
    assert updated.invoice_settings.default_payment_method == method["id"]
    assert updated.metadata.to_dict() == {"workspace": "7"}
    event = double.events[-1]
    assert event["type"] == "customer.updated"
    assert event["data"]["previous_attributes"]["metadata"] == {"workspace": None}  # as Stripe shows a new key
    cleared = client.v1.customers.update(customer.id, {"metadata": {"workspace": ""}})
    assert cleared.metadata.to_dict() == {}


def test_default_payment_method_must_belong_to_the_customer(client, double, customer):
    other = client.v1.customers.create({"email": "other@example.com"})
    [method] = double.set_card(other.id, "success")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": method["id"]}})


# --- idempotency ----------------------------------------------------------------------------------------


def test_the_same_key_and_params_replay_the_first_answer(client, double):
    params = {"email": "same@example.com", "metadata": {"a": "1"}}
    first = client.v1.customers.create(params, {"idempotency_key": "key-1"})
    second = client.v1.customers.create(params, {"idempotency_key": "key-1"})
    assert first.id == second.id
    assert len(client.v1.customers.list({"email": "same@example.com"}).data) == 1
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [event["type"] for event in double.events] == ["customer.created"]


def test_the_same_key_with_other_params_is_an_idempotency_error(client):
    client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "key-2"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.customers.create({"email": "b@example.com"}, {"idempotency_key": "key-2"})
    assert caught.value.http_status == 400
    assert "key-2" in caught.value.user_message


def test_a_validation_error_is_not_saved_for_replay(client, catalog):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create({"currency": "usd", "unit_amount": 100}, {"idempotency_key": "key-3"})
    price = client.v1.prices.create(
        {"currency": "usd", "unit_amount": 100, "product": catalog.pack.product}, {"idempotency_key": "key-3"}
    )
    assert price.id.startswith("price_")


def test_events_name_the_request_and_its_idempotency_key(client, double):
    created = client.v1.customers.create({"email": "x@example.com"}, {"idempotency_key": "key-4"})
    [event] = double.events
    assert event["request"]["idempotency_key"] == "key-4"
    assert event["request"]["id"] == created.last_response.request_id


# --- lists and expansion ----------------------------------------------------------------------------


def test_lists_page_newest_first_with_limit_and_starting_after(client, double):
    ids = []
    for number in range(5):
        ids.append(client.v1.customers.create({"email": f"c{number}@example.com"}).id)
        double.advance(10)
    first = client.v1.customers.list({"limit": 2})
    assert first.object == "list"
    assert first.url == "/v1/customers"
    assert [c.id for c in first.data] == [ids[4], ids[3]]
    assert first.has_more is True
    rest = client.v1.customers.list({"limit": 10, "starting_after": ids[3]})
    assert [c.id for c in rest.data] == [ids[2], ids[1], ids[0]]
    assert rest.has_more is False
    recent = client.v1.customers.list({"created": {"gte": START + 20}})
    assert [c.id for c in recent.data] == [ids[4], ids[3], ids[2]]
    assert [c.id for c in first.auto_paging_iter()] == list(reversed(ids))


def test_limit_over_100_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list({"limit": 101})
    assert caught.value.param == "limit"


def test_expanding_a_field_the_version_does_not_have_is_refused(client, double, catalog, customer):
    session = client.v1.checkout.sessions.create(
        {"mode": "subscription", "customer": customer.id, "line_items": [{"price": catalog.pro.id, "quantity": 1}]}
    )
    double.pay_checkout(session.id)
    invoice_id = client.v1.checkout.sessions.retrieve(session.id).invoice
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.invoices.retrieve(invoice_id, {"expand": ["subscription"]})  # gone since 2025: use parent
    assert "cannot be expanded" in caught.value.user_message
    invoice = client.v1.invoices.retrieve(invoice_id, {"expand": ["parent.subscription_details.subscription"]})
    assert invoice.parent.subscription_details.subscription.object == "subscription"


def test_the_global_api_base_works_too(double, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", double.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    created = stripe.Customer.create(email="global@example.com")
    assert stripe.Customer.retrieve(created.id).email == "global@example.com"


# --- the form encoding ------------------------------------------------------------------------------


def test_decode_nests_brackets_and_lists_both_ways():
    params = decode(
        "line_items[0][price]=price_1&line_items[0][quantity]=2&line_items[1][price]=price_2"
        "&metadata[k]=v&metadata[0]=zero&expand[]=a&expand[]=b&lookup_keys[0]=x&lookup_keys[1]=y&created[gte]=5"
    )
    assert params == {
        "line_items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
        "metadata": {"k": "v", "0": "zero"},
        "expand": ["a", "b"],
        "lookup_keys": ["x", "y"],
        "created": {"gte": "5"},
    }


def test_events_can_be_listed_and_retrieved(client, customer):
    events = client.v1.events.list({"type": "customer.created"})
    assert [event.data.object.id for event in events.data] == [customer.id]
    event = client.v1.events.retrieve(events.data[0].id)
    assert event.api_version == API_VERSION
    assert event.object == "event"
    assert event.livemode is False
