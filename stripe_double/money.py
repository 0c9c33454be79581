"""Amounts in a currency's smallest unit, shown the way a receipt would."""

from __future__ import annotations

from datetime import UTC, datetime

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"}


def format_amount(amount: int, currency: str) -> str:
    currency = currency.lower()
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    figure = f"{abs(amount):,}" if currency in _ZERO_DECIMAL else f"{whole:,}.{cents:02d}"
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{figure}" if symbol else f"{sign}{figure} {currency.upper()}"


def format_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d %b %Y")
