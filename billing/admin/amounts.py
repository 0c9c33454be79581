"""Amounts in the admin as the product writes them everywhere: credits ("+2,500.125 credits"), never millicredits.

A model's credit columns hold millicredits; an admin lists or shows one through ``credits_display``
instead of naming the column, which Django would print as the bare integer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin

from billing.credits import format_credits


def credits_display(attribute: str, description: str, *, signed: bool = False, unit: str = "credits") -> Callable:
    """A display method for a model admin showing ``row.<attribute>`` (millicredits) in credits, "" when None."""

    @admin.display(description=description)
    def shown(model_admin: admin.ModelAdmin, row: Any) -> str:
        value = getattr(row, attribute)
        if value is None:
            return ""
        text = format_credits(value, signed=signed)
        return f"{text} {unit}" if unit else text

    shown.__name__ = f"{attribute}_credits"
    return shown
