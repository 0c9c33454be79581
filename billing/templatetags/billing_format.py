"""Numbers for people, in one place: ``{{ amount|credits }}``, ``{{ cents|money }}``, …"""

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.dates import MONTHS_3

from billing.credits import MILLICREDITS_PER_CREDIT, format_cents, format_credits, format_credits_short
from billing.models import Action

register = template.Library()

TOKENS_PER_PRICE_UNIT = 10  # the help page quotes token prices per 10 tokens


@register.filter
def credits(milli: int | None) -> str:
    """ "80,000", "0.7", "1,234.567": the one way every page, email and CSV writes an amount of credits.

    Exact, so it takes no number of places: thousands grouped, and up to three decimals only
    where the amount has a fraction, as the balance, the usage and the ledger all show it.
    """
    return format_credits(milli) if isinstance(milli, int) else ""


@register.filter
def credits_signed(milli: int) -> str:
    """ "+10,000", "-0.7": a ledger entry's change."""
    return format_credits(milli, signed=True)


@register.filter
def quantity(count: int, unit: str) -> str:
    """ "1 call", "12,345 tokens": a tool's quantity in its unit."""
    return f"{count:,} {unit}{'' if count == 1 else 's'}"


@register.filter
def share_of(amount: int, total: int) -> str:
    """``amount``'s share of ``total`` in whole per cent, rounded half up: "57%".

    A share under 1 % reads "<1%" and one over 99 % (but not all) ">99%", so a specialist that
    used a little never shows as having used nothing, nor the busiest one as everything.
    """
    if total <= 0 or amount <= 0:
        return "0%"
    if amount >= total:
        return "100%"
    if amount * 100 < total:
        return "<1%"
    if amount * 100 > total * 99:
        return ">99%"
    return f"{(amount * 200 + total) // (2 * total)}%"


@register.filter
def is_web_url(url: str) -> bool:
    """Whether ``url`` may be a link's href: http(s) only, never a javascript: or data: URL someone stored."""
    return url.startswith(("https://", "http://"))


@register.filter
def credits_short(milli: int) -> str:
    return format_credits_short(milli)


@register.filter
def money(cents: int) -> str:
    return format_cents(cents)


@register.filter
def price_label(action: Action) -> str:
    """ "1 credit per 10 tokens", "500 credits per page", "1,500 credits"."""
    if action.unit == Action.Unit.TOKEN:
        amount = action.unit_price * TOKENS_PER_PRICE_UNIT
        unit = "credit" if amount == MILLICREDITS_PER_CREDIT else "credits"
        return f"{format_credits(amount)} {unit} per {TOKENS_PER_PRICE_UNIT} tokens"
    text = f"{format_credits(action.unit_price)} credits"
    return f"{text} per page" if action.unit == Action.Unit.PAGE else text


# A ledger page shows two times an entry; Django's ``date`` filter builds a DateFormat for each
# (28 µs, a fifth of the transactions region), these format the same text directly.


@register.filter
def local_iso(moment: datetime) -> str:
    """ISO 8601 on the reader's clock, for ``<time datetime>``: what ``|date:"c"`` writes."""
    return timezone.localtime(moment).isoformat()


@register.filter
def month_day(day: date) -> str:
    """ "Nov 5": what ``|date:"M j"`` writes, for the chart's thirty-odd days."""
    return f"{MONTHS_3[day.month].title()} {day.day}"


@register.filter
def local_short(moment: datetime) -> str:
    """ "Nov 5, 14:03" on the reader's clock: what ``|date:"M j, H:i"`` writes."""
    local = timezone.localtime(moment)
    return f"{MONTHS_3[local.month].title()} {local.day}, {local.hour:02d}:{local.minute:02d}"
