"""The balance card and the low-balance level, from a wallet already read with the memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from billing.models import Plan, Wallet

NEARLY_USED_PERCENT = 80
LOW_FRACTION = (1, 5)  # the low-balance alert: the total under 20 % of the period's allowance


def balance_level(*, plan_balance: int, topup_balance: int, allowance: int) -> str:
    """What the low-balance alerts go by: "empty" (bucket used up), "low" (total under 20 %) or "ok"."""
    if allowance and plan_balance == 0:
        return "empty"
    num, den = LOW_FRACTION
    if allowance and (plan_balance + topup_balance) * den < allowance * num:
        return "low"
    return "ok"


@dataclass(frozen=True)
class BalanceSummary:
    workspace_id: int
    plan: Plan
    seats: int
    allowance: int
    plan_balance: int
    topup_balance: int
    period_start: datetime
    period_end: datetime
    revision: int
    reserved: int = 0  # by active holds (running jobs): counted against what charges may use

    @property
    def total(self) -> int:
        return self.plan_balance + self.topup_balance

    @property
    def available(self) -> int:
        """What a charge or a new hold may use now: the total less what holds reserve."""
        return max(self.total - self.reserved, 0)

    @property
    def used(self) -> int:
        return max(self.allowance - self.plan_balance, 0)

    @property
    def used_percent(self) -> int:
        return min(100, self.used * 100 // self.allowance) if self.allowance else 100

    @property
    def level(self) -> str:
        """ "empty" when the bucket is used up, "low" when nearly (or the alert emails went out), else "ok"."""
        alerted = balance_level(
            plan_balance=self.plan_balance, topup_balance=self.topup_balance, allowance=self.allowance
        )
        if alerted == "empty" or self.plan_balance == 0:
            return "empty"
        return "low" if alerted == "low" or self.used_percent >= NEARLY_USED_PERCENT else "ok"


def balance_of(wallet: Wallet) -> BalanceSummary:
    """The balance card from a wallet already read (with its workspace and plan)."""
    workspace_id = wallet.workspace_id
    return BalanceSummary(
        workspace_id=workspace_id,
        plan=wallet.workspace.plan,
        seats=wallet.workspace.seats,
        allowance=wallet.period_allowance,
        plan_balance=wallet.plan_balance,
        topup_balance=wallet.topup_balance,
        period_start=wallet.period_start,
        period_end=wallet.period_end,
        revision=wallet.revision,
        reserved=wallet.reserved_at(timezone.now()) if wallet.holds else 0,
    )
