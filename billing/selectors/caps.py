"""The daily caps region: every specialist's cap and what it spent today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Sum

from billing.models import DailyUsage, SpecialistCap
from billing.selectors.catalog import specialist_names


@dataclass(frozen=True)
class CapRow:
    specialist: str  # key
    label: str
    daily_cap: int | None
    spent_today: int

    @property
    def percent(self) -> int:
        if not self.daily_cap:
            return 100 if self.daily_cap == 0 else 0
        return min(100, self.spent_today * 100 // self.daily_cap)


def caps_overview(
    *,
    workspace_id: int,
    today: date,
    spent_today: dict[str, int] | None = None,
    daily_caps: dict[str, int] | None = None,
) -> list[CapRow]:
    """Every specialist's cap and spend on ``today``; pass what the usage read already has of them.

    The billing page passes both (its usage read brings them); the caps region alone, after a
    cap changes, reads them here.
    """
    if daily_caps is None:
        daily_caps = dict(
            SpecialistCap.objects.filter(workspace_id=workspace_id).values_list("specialist_id", "daily_cap")
        )
    if spent_today is None:
        spent_today = dict(
            DailyUsage.objects.filter(workspace_id=workspace_id, day=today)
            .values("specialist_id")
            .annotate(spent=Sum("credits"))
            .values_list("specialist_id", "spent")
        )
    return [
        CapRow(key, label, daily_caps.get(key), spent_today.get(key, 0)) for key, label in specialist_names().items()
    ]
