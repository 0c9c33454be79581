"""Stripe Products and Prices for every plan and pack, kept in step with the catalog.

Prices are found by lookup key (``sigora_plan_pro``, ``sigora_pack_100k``), so running the
sync again changes nothing. Stripe prices cannot change amount: a new amount is a new price
that takes over the lookup key (``transfer_lookup_key``), and the old one is deactivated.
A checkout or a plan change bills the price ``stripe_price_id`` finds, which it refuses when
its amount no longer matches the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from billing import stripe_gateway as gateway
from billing.credits import format_credits
from billing.errors import PaymentsUnavailable
from billing.models import Plan, TopUpPack


def plan_lookup_key(plan_key: str) -> str:
    return f"sigora_plan_{plan_key}"


def pack_lookup_key(pack_key: str) -> str:
    return f"sigora_pack_{pack_key}"


def stripe_price_id(lookup_key: str, *, expected_cents: int) -> str:
    """The Stripe price id for a catalog item, refusing one whose amount differs from the catalog."""
    price = gateway.prices_by_lookup_key([lookup_key]).get(lookup_key)
    if price is None:
        raise PaymentsUnavailable(
            f"Stripe has no price {lookup_key!r} yet: run `python manage.py sync_stripe_catalog`."
        )
    if price.get("unit_amount") != expected_cents:
        raise PaymentsUnavailable(
            f"Stripe's price {lookup_key!r} is {price.get('unit_amount')} cents, the catalog says {expected_cents}: "
            "run `python manage.py sync_stripe_catalog`."
        )
    return price["id"]


@dataclass(frozen=True)
class CatalogItem:
    lookup_key: str
    name: str
    unit_amount: int
    recurring: bool
    metadata: dict[str, str]


@dataclass
class CatalogSyncSummary:
    created: list[str] = field(default_factory=list)
    repriced: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"{label}: {', '.join(keys) if keys else 'none'}"
            for label, keys in (
                ("created", self.created),
                ("repriced", self.repriced),
                ("renamed", self.renamed),
                ("unchanged", self.unchanged),
            )
        ]


def catalog_items() -> list[CatalogItem]:
    """What Stripe should sell: every paid plan (monthly, per seat where per-seat) and every pack."""
    items = [
        CatalogItem(
            lookup_key=plan_lookup_key(plan.key),
            name=f"Sigora {plan.name}" + (" (per seat)" if plan.per_seat else ""),
            unit_amount=plan.price_cents,
            recurring=True,
            metadata={"plan": plan.key},
        )
        for plan in Plan.objects.filter(is_active=True)
        if not plan.is_free
    ]
    items += [
        CatalogItem(
            lookup_key=pack_lookup_key(pack.key),
            name=f"Sigora top-up: {format_credits(pack.amount)} credits",
            unit_amount=pack.price_cents,
            recurring=False,
            metadata={"pack": pack.key},
        )
        for pack in TopUpPack.objects.filter(is_active=True)
    ]
    return items


def _price_params(item: CatalogItem, product_id: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "product": product_id,
        "unit_amount": item.unit_amount,
        "currency": settings.STRIPE_CURRENCY,
        "lookup_key": item.lookup_key,
        "nickname": item.name,
        "metadata": item.metadata,
    }
    if item.recurring:
        params["recurring"] = {"interval": "month"}
    return params


def stripe_catalog_sync() -> CatalogSyncSummary:
    """Create or update the Stripe Products and Prices; what changed."""
    summary = CatalogSyncSummary()
    items = catalog_items()
    existing = gateway.prices_by_lookup_key([item.lookup_key for item in items])
    for item in items:
        price = existing.get(item.lookup_key)
        if price is None:
            product = gateway.product_create(
                name=item.name, metadata=item.metadata, idempotency_key=f"sigora-product-{item.lookup_key}"
            )
            gateway.price_create(
                _price_params(item, product["id"]),
                idempotency_key=f"sigora-price-{item.lookup_key}-{item.unit_amount}-new",
            )
            summary.created.append(item.lookup_key)
            continue
        product = price["product"] if isinstance(price["product"], dict) else {"id": price["product"]}
        if product.get("name") != item.name or (product.get("metadata") or {}) != item.metadata:
            gateway.product_update(product["id"], name=item.name, metadata=item.metadata)
            summary.renamed.append(item.lookup_key)
        recurring = bool(price.get("recurring"))
        if price.get("unit_amount") != item.unit_amount or recurring != item.recurring:
            gateway.price_create(
                {**_price_params(item, product["id"]), "transfer_lookup_key": True},
                idempotency_key=f"sigora-price-{item.lookup_key}-{item.unit_amount}-{price['id']}",
            )
            gateway.price_deactivate(price["id"])
            summary.repriced.append(item.lookup_key)
        elif item.lookup_key not in summary.renamed:
            summary.unchanged.append(item.lookup_key)
    return summary
