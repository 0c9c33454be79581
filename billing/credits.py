"""Credits and money as people read them, and back.

Credits are integer millicredits inside the product (see ``billing.models``); these
functions are the only place that turns them into text or parses text into them.
"""

from __future__ import annotations

import re
from decimal import Decimal

from billing.bounds import BIGINT_MAX

MILLICREDITS_PER_CREDIT = 1_000

# The most any amount a person types or a caller sends may be (a cap, a budget, a threshold, an
# adjustment, a hold): a thousand of the largest pack, which anyone could mean. In millicredits it
# is 10^12, so nine million such amounts still sum inside the bigint columns that hold them.
MAX_CREDITS = 1_000_000_000
MAX_MILLICREDITS = MAX_CREDITS * MILLICREDITS_PER_CREDIT

# One rule for every amount of credits written as text: ASCII digits, an optional sign, commas
# only between groups of three digits, a point before at most three decimals (more are refused
# unless they are zeros). No exponents, underscores, spaces inside, or other scripts' digits.
_AMOUNT = re.compile(r"([+-]?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]*)(?:\.([0-9]*))?", re.ASCII)
_EXAMPLE = "Enter a number of credits, e.g. 5000 or 2.5."


class CreditsInputError(ValueError):
    """Text that is not an amount of credits; the message says why, for the person who wrote it."""


def _parsed(text: str, *, grouped: bool, limit: int) -> int:
    """Millicredits in ``text`` by the one rule; past ``limit`` either way it reads as ``limit + 1`` (signed)."""
    text = text.strip()
    found = _AMOUNT.fullmatch(text)
    if found is None or not any(char.isdigit() for char in text) or (not grouped and "," in text):
        if any(char.isdigit() and not char.isascii() for char in text):
            raise CreditsInputError("Write the amount with the digits 0 to 9.")
        if grouped and "," in text:
            raise CreditsInputError("Use commas only between groups of three digits (1,000) and a point for decimals.")
        raise CreditsInputError(_EXAMPLE if grouped else "Enter a number of credits without separators, e.g. 2.5.")
    sign, whole, fraction = found.group(1), found.group(2).replace(",", "").lstrip("0"), found.group(3) or ""
    if fraction[3:].strip("0"):
        raise CreditsInputError("Credits go to three decimals at most (0.001).")
    # Compared by length before int(): a 10,000-digit amount is never converted.
    if len(whole) > len(str(limit // MILLICREDITS_PER_CREDIT)):
        milli = limit + 1
    else:
        milli = min(limit + 1, int(whole or "0") * MILLICREDITS_PER_CREDIT + int(fraction[:3].ljust(3, "0")))
    return -milli if sign == "-" else milli


def credits(amount: int | str | Decimal) -> int:
    """Millicredits in ``amount`` credits, exactly: ``credits("0.7") == 700``, ``credits("1,500") == 1500000``.

    Refuses (ValueError) anything finer than a millicredit rather than rounding it away, and
    anything a bigint of millicredits cannot hold. Text follows the one rule above; amounts
    from people and callers go through ``credits_input`` instead, which also bounds them.
    """
    if isinstance(amount, bool):
        raise ValueError(f"{amount!r} is not a number of credits")
    milli = _parsed(amount, grouped=True, limit=BIGINT_MAX) if isinstance(amount, str) else None
    if milli is None:
        milli = Decimal(amount) * MILLICREDITS_PER_CREDIT
        if not milli.is_finite() or milli != milli.to_integral_value():
            raise ValueError(f"{amount!r} is not a whole number of millicredits")
    if abs(milli) > BIGINT_MAX:
        raise ValueError(f"{amount!r} is more credits than can be held")
    return int(milli)


def credits_input(text: str, *, minimum: int = 0, grouped: bool = True) -> int:
    """Millicredits in an amount a person typed or a caller sent, within ``minimum`` and ``MAX_CREDITS``.

    ``minimum`` is in millicredits: 0 (the default) refuses negative amounts, 1 refuses zero too,
    ``-MAX_MILLICREDITS`` takes any signed amount. ``grouped=False`` refuses thousands separators
    (the API's decimal strings). Raises CreditsInputError with a message naming what is wrong.
    """
    milli = _parsed(text, grouped=grouped, limit=MAX_MILLICREDITS)
    if minimum < 0 and not minimum <= milli <= MAX_MILLICREDITS:
        bounds = f"{format_credits(minimum)} to {format_credits(MAX_MILLICREDITS)}"
        raise CreditsInputError(f"Enter an amount from {bounds} credits.")
    if milli > MAX_MILLICREDITS:
        raise CreditsInputError(f"Enter at most {format_credits(MAX_MILLICREDITS)} credits.")
    if milli < minimum:
        raise CreditsInputError("Enter a positive number of credits." if minimum > 0 else "Enter 0 or more credits.")
    return milli


def format_credits(milli: int, *, signed: bool = False, places: int = 3, grouped: bool = True) -> str:
    """``80000000 -> "80,000"``, ``700 -> "0.7"``, ``-1500 -> "-1.5"`` (``"+1.5"`` when signed).

    Whole credits show no decimals; fractions show at most ``places`` digits, rounded half
    up (away from zero), with trailing zeros dropped, so a 7-token Haiku call reads "0.7".
    ``grouped=False`` leaves out the thousands separators ("80000"): for machines and inputs
    (JSON, CSV cells, a form's initial value), which ``credits()`` reads back exactly.
    """
    # Integer arithmetic only: a billing page formats a couple of hundred amounts, and Decimal
    # quantizing cost several times more than the rest of each row.
    magnitude = -milli if milli < 0 else milli
    if places < 3:
        step = 10 ** (3 - places)
        magnitude = (magnitude + step // 2) // step * step
    whole, fraction = divmod(magnitude, MILLICREDITS_PER_CREDIT)
    digits = f"{whole:,}" if grouped else str(whole)
    text = f"{digits}.{fraction:03d}".rstrip("0") if fraction else digits
    if not magnitude:
        return "0"
    if milli < 0:
        return f"-{text}"
    return f"+{text}" if signed else text


def format_credits_short(milli: int) -> str:
    """``80000000 -> "80K"``, ``1000000000 -> "1M"``: the help page's way of naming buckets and packs."""
    whole = milli // MILLICREDITS_PER_CREDIT
    for size, suffix in ((1_000_000, "M"), (1_000, "K")):
        if whole >= size and whole % size == 0:
            return f"{whole // size:,}{suffix}"
    return format_credits(milli)


def format_cents(cents: int) -> str:
    """``2900 -> "$29"``, ``950 -> "$9.50"``."""
    dollars, rest = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    if rest:
        return f"{sign}${dollars:,}.{rest:02d}"
    return f"{sign}${dollars:,}"
