"""Daily caps: how many credits a specialist may spend per day in a workspace."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from billing.credits import MAX_MILLICREDITS, format_credits
from billing.errors import InvalidRequest
from billing.models import Activity, Specialist, SpecialistCap, Workspace
from billing.services.accounts import activity_record


def cap_set(
    *, workspace: Workspace, specialist: str, daily_cap: int | None, actor: AbstractBaseUser | None = None
) -> SpecialistCap | None:
    """Set a specialist's daily cap in millicredits; ``None`` removes it (no cap)."""
    if not Specialist.objects.filter(key=specialist).exists():
        raise InvalidRequest(f"There is no specialist {specialist!r}.", field="specialist")
    label = Specialist.objects.get(key=specialist).label
    if daily_cap is None:
        deleted, _ = SpecialistCap.objects.filter(workspace=workspace, specialist_id=specialist).delete()
        if deleted:
            activity_record(workspace=workspace, actor=actor, verb=Activity.Verb.CAP_CHANGED, detail=f"{label}: no cap")
        return None
    if not isinstance(daily_cap, int) or isinstance(daily_cap, bool) or not 0 <= daily_cap <= MAX_MILLICREDITS:
        raise InvalidRequest(
            f"The daily cap must be from 0 to {format_credits(MAX_MILLICREDITS)} credits, to a thousandth.",
            field="daily_cap",
        )
    cap, _ = SpecialistCap.objects.update_or_create(
        workspace=workspace,
        specialist_id=specialist,
        defaults={"daily_cap": daily_cap, "updated_at": timezone.now()},
    )
    activity_record(
        workspace=workspace,
        actor=actor,
        verb=Activity.Verb.CAP_CHANGED,
        detail=f"{label}: {format_credits(daily_cap)} credits/day",
    )
    return cap


def budget_set(*, workspace: Workspace, monthly_budget: int | None, actor: AbstractBaseUser | None = None) -> Workspace:
    """Set the monthly spend guardrail in millicredits; ``None`` removes it."""
    if monthly_budget is not None and (
        not isinstance(monthly_budget, int)
        or isinstance(monthly_budget, bool)
        or not 0 <= monthly_budget <= MAX_MILLICREDITS
    ):
        raise InvalidRequest(
            f"The monthly budget must be from 0 to {format_credits(MAX_MILLICREDITS)} credits, to a thousandth.",
            field="budget",
        )
    Workspace.objects.filter(pk=workspace.pk).update(monthly_budget=monthly_budget)
    workspace.monthly_budget = monthly_budget
    detail = "no monthly budget" if monthly_budget is None else f"{format_credits(monthly_budget)} credits a month"
    activity_record(workspace=workspace, actor=actor, verb=Activity.Verb.BUDGET_CHANGED, detail=detail)
    return workspace
