"""Calendar-month arithmetic for billing periods: monthly from an anchor, the 31st a short month's last day."""

from __future__ import annotations

import calendar
from datetime import datetime


def shift_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by whole months on its own wall clock, the day clamped to the month.

    Always computed from the original anchor, never from the previous period's end, so a
    workspace created on 31 January renews on 28/29 February, then 31 March, not the 28th.
    """
    index = anchor.month - 1 + months
    year, month = anchor.year + index // 12, index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_containing(anchor: datetime, moment: datetime) -> tuple[datetime, datetime]:
    """The monthly period, counted from ``anchor``, that contains ``moment``."""
    if moment < anchor:
        raise ValueError("moment is before the anchor")
    months = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    # The estimate can be one too far (moment earlier in its month than the anchor day).
    while months > 0 and shift_months(anchor, months) > moment:
        months -= 1
    while shift_months(anchor, months + 1) <= moment:
        months += 1
    return shift_months(anchor, months), shift_months(anchor, months + 1)
