"""Money as the billing page shows it: the running subscription, payments still clearing, the invoices
and payments (billing history), and the payment method on file.

All from our own records, which fulfilment and the Stripe webhooks keep (``Purchase``,
``Subscription``, and the workspace's ``payment_method_*`` fields from ``billing.services.cards``):
rendering a page never calls Stripe. The history is one bounded query that the billing page sends
with its other regions' reads (``db.reads_run``); the payment method is read with the membership,
so it costs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from urllib.parse import urlsplit

from django.utils import dateformat

from billing import db
from billing.credits import format_credits_short
from billing.models import Purchase, Subscription, Workspace


def subscription_of(*, workspace_id: int) -> Subscription | None:
    """The workspace's running (not ended) Stripe subscription, if any."""
    found = Subscription.objects.select_related("plan").filter(workspace_id=workspace_id).first()
    return found if found is not None and found.is_live else None


@dataclass(frozen=True)
class PaymentState:
    subscription: Subscription | None
    processing: list[Purchase]

    @property
    def past_due(self) -> bool:
        return self.subscription is not None and self.subscription.past_due_since is not None


def payment_state(*, workspace_id: int, since: datetime) -> PaymentState:
    """What the balance region says about money in flight: a running subscription, payments still clearing."""
    processing = list(
        Purchase.objects.select_related("pack", "plan")
        .filter(workspace_id=workspace_id, status=Purchase.Status.PROCESSING, created_at__gte=since)
        .order_by("-id")[:5]
    )
    return PaymentState(subscription=subscription_of(workspace_id=workspace_id), processing=processing)


# --- Billing history ----------------------------------------------------------------------------

HISTORY_LIMIT = 24

# Purchases someone paid for, or tried to: a Checkout nobody paid (pending, then abandoned) charged
# nothing, and Stripe's own checkout page already told the buyer why; listing it would read as a
# payment. A failed one was a charge the bank refused (a bank debit that bounced, an auto top-up's
# declined card): that is worth showing.
SHOWN_STATUSES = (Purchase.Status.PAID, Purchase.Status.PROCESSING, Purchase.Status.FAILED)

STATUS_LABELS = {
    "paid": "Paid",
    "refunded_in_part": "Refunded in part",
    "refunded": "Refunded",
    "disputed": "Disputed",
    "failed": "Failed",
    "processing": "Processing",
}

_INVOICED = (Purchase.Kind.SUBSCRIPTION, Purchase.Kind.RENEWAL, Purchase.Kind.UPGRADE)  # Stripe invoices them

_COLUMNS = (
    "id",
    "kind",
    "status",
    "plan__name",
    "plan__per_seat",
    "seats",
    "credits",
    "amount_cents",
    "refunded_cents",
    "disputed_cents",
    "receipt_url",
    "failure",
    "created_at",
    "paid_at",
    "period_start",
    "period_end",
)


@dataclass(frozen=True)
class HistoryRow:
    """One invoice or payment as the billing page lists it: plain values, formatted by the template."""

    pk: int
    at: datetime  # when it was paid, else when it started
    description: str  # "Max plan, Dec 10 – Jan 10", "100K credits top-up", …
    amount_cents: int
    status: str  # a key of STATUS_LABELS
    refunded_cents: int
    disputed_cents: int
    failure: str  # why a failed payment failed, "" otherwise
    link_url: str  # Stripe's hosted invoice or receipt (http/https only), "" when none
    link_label: str  # "Invoice" or "Receipt"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class BillingHistory:
    rows: list[HistoryRow]
    next_cursor: int | None  # the last purchase shown, when there are older ones

    @property
    def processing(self) -> bool:
        """A payment is still clearing: the region refreshes itself until it settles."""
        return any(row.status == "processing" for row in self.rows)


def purchase_status(*, status: str, amount_cents: int, refunded_cents: int, disputed_cents: int) -> str:
    """Where a purchase's money stands: failed and processing as they are; a paid one by what went back."""
    if status == Purchase.Status.FAILED:
        return "failed"
    if status == Purchase.Status.PROCESSING:
        return "processing"
    if disputed_cents:  # an open or lost dispute holds the money; a won one gives it back (0 again)
        return "disputed"
    if refunded_cents and refunded_cents >= amount_cents:
        return "refunded"
    return "refunded_in_part" if refunded_cents else "paid"


def purchase_description(
    *,
    kind: str,
    plan_name: str | None,
    per_seat: bool,
    seats: int | None,
    credits: int,
    period_start: datetime | None,
    period_end: datetime | None,
    zone: tzinfo,
) -> str:
    """What was bought, in words: "Max plan, Dec 10 – Jan 10", "Upgrade to Ultra", "100K credits top-up"."""
    if kind == Purchase.Kind.TOP_UP:
        return f"{format_credits_short(credits)} credits top-up"
    if kind == Purchase.Kind.AUTO_TOP_UP:
        return f"Auto top-up: {format_credits_short(credits)} credits"
    plan = plan_name or "Sigora"
    seated = f" × {seats} seats" if per_seat and seats and seats > 1 else ""
    if kind == Purchase.Kind.UPGRADE:
        return f"Upgrade to {plan}{seated}"
    text = f"{plan} plan{seated}"
    if period_start is not None and period_end is not None:
        start, end = period_start.astimezone(zone), period_end.astimezone(zone)
        text += f", {dateformat.format(start, 'M j')} – {dateformat.format(end, 'M j')}"
    return text


def _link(url: str) -> str:
    """Only a web address is a link: anything else stored there is not put in an href."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else ""


def billing_history_read(
    *, workspace_id: int, zone: tzinfo, before: int | None = None, limit: int = HISTORY_LIMIT
) -> db.Read[BillingHistory]:
    """The workspace's invoices and payments, newest first, ``limit`` at a time (keyset on the id).

    One query down the (workspace, -id) index, with the plan's name joined.
    """
    rows = Purchase.objects.filter(workspace_id=workspace_id, status__in=SHOWN_STATUSES)
    if before is not None:
        rows = rows.filter(id__lt=before)
    sql, params = rows.order_by("-id").values_list(*_COLUMNS)[: limit + 1].query.sql_with_params()

    def history(found: list[tuple]) -> BillingHistory:
        shown = []
        for row in found[:limit]:
            (pk, kind, status, plan, per_seat, seats, credits, amount, refunded, disputed, url, failure) = row[:12]
            created_at, paid_at, period_start, period_end = row[12:]
            shown.append(
                HistoryRow(
                    pk=pk,
                    at=paid_at or created_at,
                    description=purchase_description(
                        kind=kind,
                        plan_name=plan,
                        per_seat=bool(per_seat),
                        seats=seats,
                        credits=credits,
                        period_start=period_start,
                        period_end=period_end,
                        zone=zone,
                    ),
                    amount_cents=amount,
                    status=purchase_status(
                        status=status, amount_cents=amount, refunded_cents=refunded, disputed_cents=disputed
                    ),
                    refunded_cents=refunded,
                    disputed_cents=disputed,
                    failure=failure if status == Purchase.Status.FAILED else "",
                    link_url=_link(url),
                    link_label="Invoice" if kind in _INVOICED else "Receipt",
                )
            )
        more = len(found) > limit and shown
        return BillingHistory(rows=shown, next_cursor=shown[-1].pk if more else None)

    return db.Read(sql, params, history)


def billing_history(
    *, workspace_id: int, zone: tzinfo, before: int | None = None, limit: int = HISTORY_LIMIT
) -> BillingHistory:
    """One page of the billing history (see ``billing_history_read``)."""
    return billing_history_read(workspace_id=workspace_id, zone=zone, before=before, limit=limit).run()


# --- The payment method on file -------------------------------------------------------------------

# Stripe's card.brand values, as people write them.
CARD_BRANDS = {
    "amex": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos Australia",
    "interac": "Interac",
    "jcb": "JCB",
    "link": "Link",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}


@dataclass(frozen=True)
class PaymentMethodShown:
    name: str  # "Visa", "STRIPE TEST BANK account"
    last4: str
    expires: str  # "12/2034"; "" for a method without an expiry
    expired: bool
    is_card: bool


def payment_method_on_file(workspace: Workspace, *, today: date) -> PaymentMethodShown | None:
    """The payment method Stripe charges next, as the webhooks last recorded it (no query: the workspace's row)."""
    kind = workspace.payment_method_type
    if not kind:
        return None
    brand = workspace.payment_method_brand
    if kind == "card":
        name = CARD_BRANDS.get(brand) or ("Card" if brand in ("", "unknown") else brand.replace("_", " ").title())
    elif brand:
        name = f"{brand} account"
    else:
        name = kind.replace("_", " ").capitalize()
    month, year = workspace.payment_method_exp_month, workspace.payment_method_exp_year
    has_expiry = month is not None and year is not None
    return PaymentMethodShown(
        name=name,
        last4=workspace.payment_method_last4,
        expires=f"{month:02d}/{year}" if has_expiry else "",
        expired=has_expiry and (year, month) < (today.year, today.month),
        is_card=kind == "card",
    )
