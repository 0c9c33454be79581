"""Credits and money as people read them, and back.

Credits are integer millicredits inside the product (see ``billing.models``); these
functions are the only place that turns them into text or parses text into them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MILLICREDITS_PER_CREDIT = 1_000


def credits(amount: int | str | Decimal) -> int:
    """Millicredits in ``amount`` credits, exactly: ``credits("0.7") == 700``, ``credits("1,500") == 1500000``.

    Refuses anything finer than a millicredit rather than rounding it away.
    """
    text = str(amount).strip().replace(",", "").replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a number of credits") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a number of credits")
    milli = value * MILLICREDITS_PER_CREDIT
    if milli != milli.to_integral_value():
        raise ValueError(f"{amount!r} has more precision than a thousandth of a credit")
    return int(milli)


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
