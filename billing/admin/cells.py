"""The admin's list cells that carry markup: each is a partial of ``admin/billing/cells.html``.

A display function (``@admin.display``) returns plain text where it can; where a cell is a link
or two lines, it hands its values to the cell's template here, which escapes them like any other.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

TEMPLATE = "admin/billing/cells.html"


def cell(partial: str, /, **values: Any) -> SafeString:
    """The cell ``partial`` (a partial of the cells template) rendered with ``values``."""
    return render_to_string(f"{TEMPLATE}#{partial}", values)
