"""Every write in billing: the only code that changes wallets and ledger entries."""

from billing.errors import (
    BillingError,
    DailyCapReached,
    EmailUnverified,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidRequest,
    NotPermitted,
    SequencePaused,
    UnknownAction,
)
from billing.services.accounts import (
    InvitationSent,
    account_signup,
    account_signup_invited,
    activity_record,
    invitation_accept,
    invitation_closed,
    invitation_create,
    invitation_lookup,
    invitation_revoke,
    membership_remove,
)
from billing.services.adjustments import credits_adjust, credits_adjust_preview
from billing.services.auto_topup import auto_topup_set
from billing.services.byok import byok_key, byok_remove, byok_set
from billing.services.caps import budget_set, cap_set
from billing.services.catalog import action_update, catalog_changes_check, pack_update, plan_update
from billing.services.charging import UsageEvent, charge, charge_batch, usage_event, usage_record
from billing.services.checkout import (
    checkout_fulfil,
    checkout_return,
    checkouts_reconcile,
    plan_checkout_start,
    topup_checkout_start,
)
from billing.services.holds import HoldSettlement, hold_place, hold_release, hold_settle
from billing.services.leads import record_reply, resume_lead
from billing.services.lockouts import lockout_lift
from billing.services.portal import portal_start
from billing.services.two_factor import (
    two_factor_check,
    two_factor_disable,
    two_factor_enrol_begin,
    two_factor_enrol_confirm,
    two_factor_reset,
)
from billing.services.verification import (
    address_verify,
    email_verify,
    verification_send,
    verification_token_state,
    workspace_paid,
)
from billing.services.wallets import entry_post, entry_replay, wallet_lock
from billing.services.workspaces import workspace_create

__all__ = [
    "BillingError",
    "DailyCapReached",
    "EmailUnverified",
    "HoldSettlement",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidRequest",
    "InvitationSent",
    "NotPermitted",
    "SequencePaused",
    "UnknownAction",
    "UsageEvent",
    "account_signup",
    "account_signup_invited",
    "action_update",
    "activity_record",
    "address_verify",
    "auto_topup_set",
    "budget_set",
    "byok_key",
    "byok_remove",
    "byok_set",
    "cap_set",
    "catalog_changes_check",
    "charge",
    "charge_batch",
    "checkout_fulfil",
    "checkout_return",
    "checkouts_reconcile",
    "credits_adjust",
    "credits_adjust_preview",
    "email_verify",
    "entry_post",
    "entry_replay",
    "hold_place",
    "hold_release",
    "hold_settle",
    "invitation_accept",
    "invitation_closed",
    "invitation_create",
    "invitation_lookup",
    "invitation_revoke",
    "lockout_lift",
    "membership_remove",
    "pack_update",
    "plan_checkout_start",
    "plan_update",
    "portal_start",
    "record_reply",
    "resume_lead",
    "topup_checkout_start",
    "two_factor_check",
    "two_factor_disable",
    "two_factor_enrol_begin",
    "two_factor_enrol_confirm",
    "two_factor_reset",
    "usage_event",
    "usage_record",
    "verification_send",
    "verification_token_state",
    "wallet_lock",
    "workspace_create",
    "workspace_paid",
]
