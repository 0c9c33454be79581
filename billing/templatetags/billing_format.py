"""Numbers for people, in one place: ``{{ amount|credits }}``, ``{{ cents|money }}``, …"""

from django import template

from billing.credits import MILLICREDITS_PER_CREDIT, format_cents, format_credits, format_credits_short
from billing.models import Action

register = template.Library()

TOKENS_PER_PRICE_UNIT = 10  # the help page quotes token prices per 10 tokens


@register.filter
def credits(milli: int | None) -> str:
    return format_credits(milli) if isinstance(milli, int) else ""


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
