"""Opening a billing period: the unused bucket expires and the plan's allowance is granted.

One period is granted once: the grant's ledger key is derived from the period's start, so
``invoice.paid``, the checkout that started a subscription and the periodic reset job can all
ask for the same period and only the first one writes.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.models import LedgerEntry, Plan, Wallet, Workspace
from billing.services.ledger_keys import plan_expiry_key, plan_grant_key
from billing.services.wallets import bucket_expire, entry_post, wallet_lock


def period_begin(
    *,
    workspace_id: int,
    start: datetime,
    end: datetime,
    plan: Plan,
    seats: int,
    now: datetime,
    external_ref: str = "",
    reason: str = "",
    receipt_url: str = "",
    anchor: datetime | None = None,
) -> LedgerEntry | None:
    """Open the period [start, end) for ``plan`` × ``seats``; the grant, or None if already opened or stale.

    A period that ends before the wallet's current one began is stale (an old event arriving
    late) and changes nothing. (Stripe's times are whole seconds, so a subscription bought in
    the same second the workspace opened "starts" a fraction before its Free period: not stale.)
    """
    with transaction.atomic():
        wallet: Wallet = wallet_lock(workspace_id=workspace_id)
        key = plan_grant_key(start)
        if LedgerEntry.objects.filter(workspace_id=workspace_id, idempotency_key=key).exists():
            return None
        if end <= wallet.period_start:
            return None
        bucket_expire(
            wallet,
            idempotency_key=plan_expiry_key(wallet.period_start),
            reason="Unused plan credits expired at the end of the period",
            now=now,
            metadata={"period_start": wallet.period_start.isoformat(), "period_end": wallet.period_end.isoformat()},
        )
        allowance = plan.allowance_for(seats)
        wallet.period_start, wallet.period_end, wallet.period_allowance = start, end, allowance
        wallet.period_spend = 0  # the monthly budget starts over
        if anchor is not None:  # a new rhythm: a subscription's start, or Free after one ends
            wallet.period_anchor = anchor
        entry = entry_post(
            wallet,
            kind=LedgerEntry.Kind.PLAN_GRANT,
            plan_delta=allowance,
            idempotency_key=key,
            reason=reason or f"{plan.name} plan: monthly credits",
            external_ref=external_ref,
            now=now,
            metadata={"plan": plan.key, "seats": seats, "period_start": start.isoformat()}
            | ({"receipt_url": receipt_url} if receipt_url else {}),
        )
        Workspace.objects.filter(pk=workspace_id).update(plan=plan, seats=seats)
        return entry
