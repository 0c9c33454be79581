"""Opening workspaces and managing who belongs to them."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.bounds import column_length
from billing.errors import InvalidRequest
from billing.models import (
    SIGNUP_PLAN_KEY,
    FreeCredits,
    LedgerEntry,
    Membership,
    Plan,
    Wallet,
    Workspace,
    validate_time_zone,
)
from billing.months import shift_months
from billing.services.ledger_keys import plan_grant_key
from billing.services.wallets import entry_post


@transaction.atomic
def workspace_create(
    *,
    name: str,
    owner: AbstractBaseUser,
    plan_key: str = SIGNUP_PLAN_KEY,
    seats: int = 1,
    time_zone: str = "UTC",
    now: datetime | None = None,
    awaiting_verification: bool = False,
) -> Workspace:
    """Open a workspace with its owner and wallet, and grant the first period's bucket.

    ``awaiting_verification`` (a sign-up, issue 18): the owner has not verified their address yet,
    so the Free bucket is not granted (balances 0, no entry) and charges are refused until they do;
    ``billing.services.verification`` then grants it, if the address has not had a Free grant.
    """
    now = now or timezone.now()
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("A workspace needs a name.", field="name")
    if len(name) > column_length(Workspace, "name"):
        raise InvalidRequest(
            f"The workspace name is too long ({column_length(Workspace, 'name')} characters at most).", field="name"
        )
    try:
        validate_time_zone(time_zone)
    except ValidationError as exc:
        raise InvalidRequest(exc.messages[0], field="time_zone") from None
    if not isinstance(seats, int) or isinstance(seats, bool) or seats < 1:
        raise InvalidRequest("Seats must be a whole number of at least 1.", field="seats")
    plan = Plan.objects.filter(key=plan_key, is_active=True).first()
    if plan is None:
        raise InvalidRequest(f"There is no plan called {plan_key!r}.", field="plan_key")

    awaiting = awaiting_verification and plan.is_free
    workspace = Workspace.objects.create(
        name=name,
        plan=plan,
        seats=seats,
        time_zone=time_zone,
        created_at=now,
        unverified=awaiting,
        free_credits=FreeCredits.AWAITING if awaiting else FreeCredits.GRANTED,
    )
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    # Periods run on the workspace's own wall clock from its creation (DESIGN.md §3).
    start = now.astimezone(workspace.zone)
    wallet = Wallet.objects.create(
        workspace=workspace,
        period_start=start,
        period_end=shift_months(start, 1),
        period_allowance=0,
        period_anchor=start,
        updated_at=now,
    )
    if not awaiting:
        period_grant(wallet, plan=plan, seats=seats, now=now)
    return workspace


def period_grant(wallet: Wallet, *, plan: Plan, seats: int, now: datetime, why: str = "") -> LedgerEntry:
    """Grant the plan's allowance for the locked (or new) wallet's current period: its period's one grant."""
    allowance = plan.allowance_for(seats)
    wallet.period_allowance = allowance
    return entry_post(
        wallet,
        kind=LedgerEntry.Kind.PLAN_GRANT,
        plan_delta=allowance,
        idempotency_key=plan_grant_key(wallet.period_start),
        reason=f"{plan.name} plan: monthly credits{why}",
        now=now,
        metadata={"plan": plan.key, "seats": seats, "period_start": wallet.period_start.isoformat()},
    )
