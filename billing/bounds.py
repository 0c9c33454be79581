"""The bounds every id and whole number from outside is held to, where it is parsed.

Pages, the admin, the API and webhooks all read ids from text a person or a caller wrote.
"²" is a digit to ``str.isdigit()`` and not to ``int()``; "١٢٣" is a number to ``int()``
and not to a person reading the URL; an id past bigint fails in the database; ``int()``
refuses a string of over 4,300 digits. So every such value is read here, by one rule:
ASCII digits only, within the range the caller names (never past PostgreSQL's bigint).
Amounts of credits have their own parser and bound (``billing.credits``); lengths of text
come from the model field the text is stored in.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Field, Model

BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: every id column and every millicredit column


def whole_number(raw: object, *, low: int = 0, high: int = BIGINT_MAX) -> int | None:
    """``raw`` as a whole number from ``low`` to ``high``, or None when it is not one.

    Text must be ASCII digits alone (no sign, spaces or separators); an int is taken as it is.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)):
        value = int(raw)
    else:
        return None
    return value if low <= value <= high else None


def id_parsed(raw: object) -> int | None:
    """A row id (1 to bigint's maximum) from text or an int, or None when ``raw`` is not one."""
    return whole_number(raw, low=1)


def column_length(model: type[Model], field: str) -> int:
    """The most characters ``model.field``'s column holds: forms and services read it, never restate it."""
    return model._meta.get_field(field).max_length


def fits_column(text: str, model: type[Model], field: str) -> bool:
    """Whether ``text`` could be stored in ``model.field``, so looking it up there can find it at all.

    Within the column's length, and without NUL, which PostgreSQL's text refuses (a query naming it fails).
    """
    return len(text) <= column_length(model, field) and "\x00" not in text


def is_value_of(field: Field, raw: object) -> bool:
    """Whether ``raw`` (an id from a URL or a form) is a value ``field``'s column could hold, so a lookup by it
    can be sent: an integer within bigint, text within the column's length and without NUL."""
    try:
        value = field.to_python(raw)
    except ValidationError:
        return False
    if isinstance(value, int):
        return -BIGINT_MAX - 1 <= value <= BIGINT_MAX
    if isinstance(value, str):
        return "\x00" not in value and (field.max_length is None or len(value) <= field.max_length)
    return value is not None
