"""Daily caps: how many credits a specialist may spend per day in a workspace."""

from __future__ import annotations

from django.utils import timezone

from billing.errors import InvalidRequest
from billing.models import Specialist, SpecialistCap, Workspace


def cap_set(*, workspace: Workspace, specialist: str, daily_cap: int | None) -> SpecialistCap | None:
    """Set a specialist's daily cap in millicredits; ``None`` removes it (no cap)."""
    if not Specialist.objects.filter(key=specialist).exists():
        raise InvalidRequest(f"There is no specialist {specialist!r}.", field="specialist")
    if daily_cap is None:
        SpecialistCap.objects.filter(workspace=workspace, specialist_id=specialist).delete()
        return None
    if not isinstance(daily_cap, int) or isinstance(daily_cap, bool) or daily_cap < 0:
        raise InvalidRequest("daily_cap must be a whole, non-negative number of millicredits.", field="daily_cap")
    cap, _ = SpecialistCap.objects.update_or_create(
        workspace=workspace,
        specialist_id=specialist,
        defaults={"daily_cap": daily_cap, "updated_at": timezone.now()},
    )
    return cap
