"""The payment method on file: what Stripe charges next for a workspace, kept on the workspace's row.

The billing page shows it (brand, last four digits, expiry) without calling Stripe, so it is written
from what Stripe already tells us:

- a paid Checkout saves its card and fulfilment makes it the customer's default
  (``checkout.payment_details``): that charge's card is now on file;
- an off-session payment (auto top-up) charged the default: it refreshes the same method's details,
  or fills in a workspace that had none recorded, and never replaces a different one (a newer card
  may have been set in the portal between the charge and its report);
- ``customer.updated`` and ``payment_method.*`` events, when the card changes in the Billing Portal:
  the customer is read from Stripe as it is now (events come late and out of order), and its
  default is on file; a customer with no default (a subscription started in Checkout keeps its card
  on the subscription) shows its newest saved method.

Each record carries when Stripe said so (``payment_method_as_of``); an older report never replaces a
newer one, whichever order the writers run in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.bounds import column_length
from billing.models import Workspace

logger = logging.getLogger(__name__)

_SMALLINT_MAX = 32_767


@dataclass(frozen=True)
class PaymentMethodDetails:
    """What the billing page shows of a payment method: no number, no fingerprint."""

    id: str
    type: str  # "card", "us_bank_account", …
    brand: str  # a card's brand ("visa"), or a bank account's bank
    last4: str
    exp_month: int | None = None
    exp_year: int | None = None


def _text(value: Any, field: str) -> str:
    return str(value or "")[: column_length(Workspace, field)]


def _bounded(value: Any, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def _details(method_id: Any, kind: Any, shown: Any) -> PaymentMethodDetails | None:
    """From a method's (or a charge's) hash of its type (``card``, ``us_bank_account``, ``sepa_debit``…)."""
    if not isinstance(shown, dict) or not method_id:
        return None
    brand = shown.get("brand") if kind == "card" else shown.get("bank_name")  # bank debits name their bank
    return PaymentMethodDetails(
        id=_text(method_id, "payment_method_id"),
        type=_text(kind, "payment_method_type"),
        brand=_text(brand, "payment_method_brand"),
        last4=_text(shown.get("last4"), "payment_method_last4"),
        exp_month=_bounded(shown.get("exp_month"), 1, 12) if kind == "card" else None,
        exp_year=_bounded(shown.get("exp_year"), 1, _SMALLINT_MAX) if kind == "card" else None,
    )


def payment_method_details(method: dict[str, Any] | None) -> PaymentMethodDetails | None:
    """A Stripe PaymentMethod's details (``card.brand``, ``card.last4``, ``card.exp_month``, …)."""
    if not isinstance(method, dict):
        return None
    kind = method.get("type")
    return _details(method.get("id"), kind, method.get(kind) if isinstance(kind, str) else None)


def charge_payment_method_details(charge: dict[str, Any]) -> PaymentMethodDetails | None:
    """The details of the method a Stripe Charge was paid with (its ``payment_method_details``)."""
    method_id = charge.get("payment_method")
    shown = charge.get("payment_method_details") or {}
    kind = shown.get("type")
    return _details(method_id, kind, shown.get(kind) if isinstance(kind, str) else None)


def payment_method_record(
    *, customer_id: str, details: PaymentMethodDetails | None, as_of: datetime, only_refresh: bool = False
) -> bool:
    """Put ``details`` (None: nothing on file) on the customer's workspace, unless a newer report is there.

    ``only_refresh``: change the record only if it is this same method or nothing is recorded yet.
    One conditional UPDATE, so concurrent writers need no lock: the newest report wins.
    """
    if not customer_id:
        return False
    newer_or_none = Q(payment_method_as_of__isnull=True) | Q(payment_method_as_of__lte=as_of)
    rows = Workspace.objects.filter(newer_or_none, stripe_customer_id=customer_id)
    if only_refresh:
        rows = rows.filter(Q(payment_method_id="") | Q(payment_method_id=details.id if details else ""))
    changed = rows.update(
        payment_method_id=details.id if details else "",
        payment_method_type=details.type if details else "",
        payment_method_brand=details.brand if details else "",
        payment_method_last4=details.last4 if details else "",
        payment_method_exp_month=details.exp_month if details else None,
        payment_method_exp_year=details.exp_year if details else None,
        payment_method_as_of=as_of,
    )
    return bool(changed)


def payment_method_paid_with(*, customer_id: str, charge: dict[str, Any], made_default: bool, as_of: datetime) -> bool:
    """A paid charge's method, read from the charge fulfilment already fetched (no call to Stripe).

    ``made_default``: this payment made it the customer's default (a Checkout that saves its card):
    it is the method on file from ``as_of``. Otherwise (an off-session payment charged the default)
    it only refreshes the same method's details, or fills an empty record.
    """
    details = charge_payment_method_details(charge)
    if details is None:
        return False
    return payment_method_record(customer_id=customer_id, details=details, as_of=as_of, only_refresh=not made_default)


def payment_method_sync(*, customer_id: str, now: datetime | None = None) -> PaymentMethodDetails | None:
    """Read the customer's payment method from Stripe as it is now and put it on file.

    For ``customer.updated`` and ``payment_method.*`` events (a card changed in the Billing Portal):
    the event's own snapshot may be stale, so Stripe is asked. The default for invoices first, else
    the newest saved method (a subscription started in Checkout keeps its card on the subscription).
    A customer that is not one of ours costs no call.
    """
    if not customer_id or not Workspace.objects.filter(stripe_customer_id=customer_id).exists():
        return None
    as_of = now or timezone.now()  # before the read: a report read later wins over this one
    customer = gateway.customer_retrieve(customer_id, expand=["invoice_settings.default_payment_method"])
    method = None
    if not customer.get("deleted"):
        method = (customer.get("invoice_settings") or {}).get("default_payment_method")
        if not isinstance(method, dict):
            newest = gateway.customer_payment_methods(customer_id, limit=1)
            method = newest[0] if newest else None
    details = payment_method_details(method)
    payment_method_record(customer_id=customer_id, details=details, as_of=as_of)
    logger.info("customer %s: payment method on file %s", customer_id, details.id if details else "none")
    return details
