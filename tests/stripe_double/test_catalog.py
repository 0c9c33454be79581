"""Products and prices, as a catalog sync uses them."""

from __future__ import annotations

import pytest
import stripe


def test_products_are_created_retrieved_updated_and_listed(client):
    product = client.v1.products.create({"name": "Pro", "metadata": {"plan": "pro"}, "description": "80K credits"})
    assert product.id.startswith("prod_")
    assert product.active is True
    assert client.v1.products.retrieve(product.id).metadata.to_dict() == {"plan": "pro"}
    renamed = client.v1.products.update(product.id, {"name": "Pro (2026)", "metadata": {"plan": "pro2"}})
    assert renamed.name == "Pro (2026)"
    assert renamed.metadata.to_dict() == {"plan": "pro2"}
    assert [p.id for p in client.v1.products.list({"active": True}).data] == [product.id]


def test_a_product_may_be_given_its_own_id_once(client):
    assert client.v1.products.create({"id": "prod_sigora_pro", "name": "Pro"}).id == "prod_sigora_pro"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.create({"id": "prod_sigora_pro", "name": "Pro"})


def test_prices_carry_every_field_a_sync_sets(client):
    product = client.v1.products.create({"name": "Max"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "unit_amount": 9900,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "max_monthly",
            "nickname": "Max monthly",
            "metadata": {"plan": "max"},
        }
    )
    assert price.id.startswith("price_")
    assert (price.unit_amount, price.currency, price.type) == (9900, "usd", "recurring")
    assert price.recurring.interval == "month"
    assert price.recurring.interval_count == 1
    assert (price.lookup_key, price.nickname, price.metadata.to_dict()) == (
        "max_monthly",
        "Max monthly",
        {"plan": "max"},
    )
    one_time = client.v1.prices.create({"product": product.id, "unit_amount": 1000, "currency": "usd"})
    assert one_time.type == "one_time"
    assert one_time.recurring is None


def test_prices_list_by_lookup_keys_with_the_product_expanded(client):
    product = client.v1.products.create({"name": "Packs"})
    small = client.v1.prices.create(
        {"product": product.id, "unit_amount": 1000, "currency": "usd", "lookup_key": "p50"}
    )
    client.v1.prices.create({"product": product.id, "unit_amount": 1700, "currency": "usd", "lookup_key": "p100"})
    client.v1.prices.create({"product": product.id, "unit_amount": 9000, "currency": "usd", "lookup_key": "p1m"})
    found = client.v1.prices.list({"lookup_keys": ["p50", "p100"], "active": True, "expand": ["data.product"]})
    assert sorted(p.lookup_key for p in found.data) == ["p100", "p50"]
    assert {p.product.name for p in found.data} == {"Packs"}
    client.v1.prices.update(small.id, {"active": False})
    assert [p.lookup_key for p in client.v1.prices.list({"lookup_keys": ["p50"], "active": True}).data] == []
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["p50"]}).data] == [small.id]
    assert len(client.v1.prices.list({"product": product.id}).data) == 3


def test_a_lookup_key_is_unique_unless_transferred(client, double):
    product = client.v1.products.create({"name": "Pro"})
    old = client.v1.prices.create({"product": product.id, "unit_amount": 2900, "currency": "usd", "lookup_key": "pro"})
    client.v1.prices.update(old.id, {"active": False})  # inactive holders still hold their key
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create({"product": product.id, "unit_amount": 3900, "currency": "usd", "lookup_key": "pro"})
    assert caught.value.param == "lookup_key"
    assert old.id in caught.value.user_message
    new = client.v1.prices.create(
        {
            "product": product.id,
            "unit_amount": 3900,
            "currency": "usd",
            "lookup_key": "pro",
            "transfer_lookup_key": True,
        }
    )
    assert new.lookup_key == "pro"
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["pro"]}).data] == [new.id]
    transferred = [e for e in double.events if e["type"] == "price.updated"][-1]
    assert transferred["data"]["previous_attributes"] == {"lookup_key": "pro"}


def test_a_price_amount_cannot_change(client):
    product = client.v1.products.create({"name": "Pro"})
    price = client.v1.prices.create({"product": product.id, "unit_amount": 2900, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(price.id, {"unit_amount": 3900})
    assert caught.value.code == "parameter_unknown"
    updated = client.v1.prices.update(price.id, {"metadata": {"v": "2"}, "lookup_key": "pro_v2", "nickname": "Pro"})
    assert (updated.unit_amount, updated.lookup_key, updated.metadata.to_dict()) == (2900, "pro_v2", {"v": "2"})


def test_a_product_default_price_can_be_made_with_it(client):
    product = client.v1.products.create(
        {
            "name": "Ultra",
            "default_price_data": {"currency": "usd", "unit_amount": 19900, "recurring": {"interval": "month"}},
        }
    )
    price = client.v1.prices.retrieve(product.default_price)
    assert (price.product, price.unit_amount) == (product.id, 19900)
