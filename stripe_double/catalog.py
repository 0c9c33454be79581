"""Products and prices: what a catalog sync creates and what Checkout and subscriptions sell."""

from __future__ import annotations

from .encoding import Params, as_bool, as_dict, as_int, as_list, as_str, assign, merge_metadata
from .errors import invalid, missing
from .routing import retrieve, route
from .store import Obj, Store, list_filter

_INTERVALS = ("day", "week", "month", "year")


# --- products ---------------------------------------------------------------------------------------


def product_new(store: Store, params: Params) -> Obj:
    name = as_str(params, "name", required=True)
    product_id = as_str(params, "id")
    if product_id and store.find(product_id):
        raise invalid(f"Product already exists with ID '{product_id}'.", param="id", code="resource_already_exists")
    now = store.now()
    product = store.add(
        {
            "id": product_id or store.new_id("prod_", 14),
            "object": "product",
            "active": as_bool(params, "active") is not False,
            "created": now,
            "default_price": None,
            "description": as_str(params, "description"),
            "images": as_list(params, "images"),
            "livemode": False,
            "marketing_features": [],
            "metadata": merge_metadata({}, params.get("metadata", {})),
            "name": name,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": as_str(params, "statement_descriptor"),
            "tax_code": None,
            "type": "service",
            "unit_label": as_str(params, "unit_label"),
            "updated": now,
            "url": as_str(params, "url"),
        }
    )
    store.emit("product.created", product)
    return product


@route("POST", "/v1/products")
def product_create(store: Store, params: Params) -> Obj:
    product = product_new(store, params)
    price_data = as_dict(params, "default_price_data")
    if price_data:
        price = price_new(store, {**price_data, "product": product["id"]})
        product["default_price"] = price["id"]
    return product


@route("POST", "/v1/products/{id}")
def product_update(store: Store, params: Params, product_id: str) -> Obj:
    product = store.get(product_id, "product")
    if "name" in params and not params["name"]:
        raise missing("name")
    with store.updating(product, "product.updated"):
        assign(product, params, "name", "description", "statement_descriptor", "unit_label", "url")
        if "active" in params:
            product["active"] = bool(as_bool(params, "active"))
        if "default_price" in params:
            price_id = as_str(params, "default_price")
            if price_id is not None and store.get(price_id, "price", param="default_price")["product"] != product_id:
                raise invalid("The default price must belong to this product.", param="default_price")
            product["default_price"] = price_id
        product["updated"] = store.now()
    return product


@route("GET", "/v1/products")
def product_list(store: Store, params: Params) -> Obj:
    products = list_filter(store.all("product"), params, "active")
    ids = as_list(params, "ids")
    if ids:
        products = [product for product in products if product["id"] in ids]
    return store.page(products, params, "/v1/products")


# --- prices -----------------------------------------------------------------------------------------


def price_new(store: Store, params: Params, *, inline: bool = False) -> Obj:
    """A price; ``inline`` ones (Checkout's ``price_data``) are made inactive, as Stripe hides them."""
    currency = (as_str(params, "currency", required=True) or "").lower()
    unit_amount = as_int(params, "unit_amount", minimum=0)
    if unit_amount is None:
        decimal = as_str(params, "unit_amount_decimal")
        if decimal is None or not decimal.isdigit():
            raise missing("unit_amount")
        unit_amount = int(decimal)
    product_id = as_str(params, "product")
    product_data = as_dict(params, "product_data")
    if product_id:
        store.get(product_id, "product", param="product")
    elif product_data:
        product_id = product_new(store, product_data)["id"]
    else:
        raise missing("product")
    lookup_key = as_str(params, "lookup_key")
    if lookup_key is not None:
        _lookup_key_claim(store, lookup_key, transfer=bool(as_bool(params, "transfer_lookup_key")), owner=None)
    price = store.add(
        {
            "id": store.new_id("price_"),
            "object": "price",
            "active": (as_bool(params, "active") is not False) and not inline,
            "billing_scheme": "per_unit",
            "created": store.now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": merge_metadata({}, params.get("metadata", {})),
            "nickname": as_str(params, "nickname"),
            "product": product_id,
            "recurring": _recurring(as_dict(params, "recurring")),
            "tax_behavior": as_str(params, "tax_behavior") or "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        }
    )
    price["type"] = "recurring" if price["recurring"] else "one_time"
    store.emit("price.created", price)
    return price


def _recurring(recurring: Params) -> Obj | None:
    if not recurring:
        return None
    interval = as_str(recurring, "interval", required=True)
    if interval not in _INTERVALS:
        raise invalid(
            f"Invalid recurring[interval]: must be one of {', '.join(_INTERVALS)}", param="recurring[interval]"
        )
    return {
        "interval": interval,
        "interval_count": as_int(recurring, "interval_count", minimum=1) or 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def _lookup_key_claim(store: Store, key: str, *, transfer: bool, owner: str | None) -> None:
    """Lookup keys are unique over every price, active or not; ``transfer_lookup_key`` takes one over."""
    for holder in store.all("price"):
        if holder["lookup_key"] == key and holder["id"] != owner:
            if not transfer:
                raise invalid(f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key")
            holder["lookup_key"] = None
            store.emit("price.updated", holder, {"lookup_key": key})


@route("POST", "/v1/prices")
def price_create(store: Store, params: Params) -> Obj:
    return price_new(store, params)


@route("POST", "/v1/prices/{id}")
def price_update(store: Store, params: Params, price_id: str) -> Obj:
    price = store.get(price_id, "price")
    for fixed in ("unit_amount", "unit_amount_decimal", "currency", "product", "recurring"):
        if fixed in params:
            raise invalid(f"Received unknown parameter: {fixed}", param=fixed, code="parameter_unknown")
    if params.get("lookup_key"):
        transfer = bool(as_bool(params, "transfer_lookup_key"))
        _lookup_key_claim(store, str(params["lookup_key"]), transfer=transfer, owner=price_id)
    with store.updating(price, "price.updated"):
        assign(price, params, "nickname", "tax_behavior", "lookup_key")
        if "active" in params:
            price["active"] = bool(as_bool(params, "active"))
    return price


@route("GET", "/v1/prices")
def price_list(store: Store, params: Params) -> Obj:
    prices = list_filter(store.all("price"), params, "active", "product", "type", "currency")
    keys = as_list(params, "lookup_keys")
    if len(keys) > 10:
        raise invalid("You may only specify up to 10 lookup keys.", param="lookup_keys")
    if keys:
        prices = [price for price in prices if price["lookup_key"] in keys]
    interval = as_dict(params, "recurring").get("interval")
    if interval:
        prices = [price for price in prices if (price["recurring"] or {}).get("interval") == interval]
    return store.page(prices, params, "/v1/prices")


def price_label(store: Store, price: Obj) -> str:
    """How pages name a price: its nickname, else its product's name."""
    return price["nickname"] or store.get(price["product"], "product")["name"]


retrieve("/v1/products", "product")
retrieve("/v1/prices", "price")
