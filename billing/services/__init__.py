"""Every write in billing: the only code that changes wallets and ledger entries."""

from billing.errors import (
    BillingError,
    DailyCapReached,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    SequencePaused,
    UnknownAction,
)
from billing.services.wallets import entry_post, entry_replay, wallet_lock
from billing.services.workspaces import workspace_create

__all__ = [
    "BillingError",
    "DailyCapReached",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidRequest",
    "SequencePaused",
    "UnknownAction",
    "entry_post",
    "entry_replay",
    "wallet_lock",
    "workspace_create",
]
