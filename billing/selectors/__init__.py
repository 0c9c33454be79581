"""Every read the pages, the API, the admin and the commands need: the selectors.

Import them from here (``from billing import selectors``; ``selectors.balance_of(...)``): this
package's ``__init__`` is their public face, and its modules are by subject, each free to change
behind it. Reads are the ORM's, except the measured hot paths (the ledger's pages and export,
the usage summary, the audits), whose SQL names its tables and columns through ``billing.db``.
``Read`` and ``reads_run`` (a page's several reads in one round trip) live in ``billing.db`` and
are exported here too.
"""

from billing.db import Read, reads_run
from billing.selectors.activity import activity_page
from billing.selectors.advisor import (
    ADVICE_DAYS,
    MIN_HISTORY_DAYS,
    Advice,
    Combination,
    PackCount,
    UsageWindow,
    advisor_read,
    cheapest_cover,
    plan_advice,
)
from billing.selectors.audit import AuditChunk, LedgerProblem, holds_audit, ledger_audit
from billing.selectors.balances import LOW_FRACTION, NEARLY_USED_PERCENT, BalanceSummary, balance_level, balance_of
from billing.selectors.caps import CapRow, caps_overview
from billing.selectors.catalog import (
    ActionGroup,
    CatalogOverview,
    Offers,
    PackOffer,
    ToolName,
    active_plans,
    catalog_overview,
    offers,
    pack_offers,
    signup_plan,
    specialist_label,
    specialist_names,
    tool_named,
    tool_names,
)
from billing.selectors.ledger import LedgerFilters, LedgerPage, LedgerRow, ledger_export, ledger_page, ledger_read
from billing.selectors.lockouts import lockout_ends, lockout_rows, lockout_rows_locked
from billing.selectors.memberships import memberships_of, user_with_memberships
from billing.selectors.payments import (
    CARD_BRANDS,
    HISTORY_LIMIT,
    SHOWN_STATUSES,
    STATUS_LABELS,
    BillingHistory,
    HistoryRow,
    PaymentMethodShown,
    PaymentState,
    billing_history,
    billing_history_read,
    payment_method_on_file,
    payment_state,
    purchase_description,
    purchase_status,
    subscription_of,
)
from billing.selectors.usage import FORECAST_HORIZON_DAYS, ToolUsage, UsageSummary, usage_read, usage_summary

__all__ = [
    "ADVICE_DAYS",
    "CARD_BRANDS",
    "FORECAST_HORIZON_DAYS",
    "HISTORY_LIMIT",
    "LOW_FRACTION",
    "MIN_HISTORY_DAYS",
    "NEARLY_USED_PERCENT",
    "SHOWN_STATUSES",
    "STATUS_LABELS",
    "ActionGroup",
    "Advice",
    "AuditChunk",
    "BalanceSummary",
    "BillingHistory",
    "CapRow",
    "CatalogOverview",
    "Combination",
    "HistoryRow",
    "LedgerFilters",
    "LedgerPage",
    "LedgerProblem",
    "LedgerRow",
    "Offers",
    "PackCount",
    "PackOffer",
    "PaymentMethodShown",
    "PaymentState",
    "Read",
    "ToolName",
    "ToolUsage",
    "UsageSummary",
    "UsageWindow",
    "active_plans",
    "activity_page",
    "advisor_read",
    "balance_level",
    "balance_of",
    "billing_history",
    "billing_history_read",
    "caps_overview",
    "catalog_overview",
    "cheapest_cover",
    "holds_audit",
    "ledger_audit",
    "ledger_export",
    "ledger_page",
    "ledger_read",
    "lockout_ends",
    "lockout_rows",
    "lockout_rows_locked",
    "memberships_of",
    "offers",
    "pack_offers",
    "payment_method_on_file",
    "payment_state",
    "plan_advice",
    "purchase_description",
    "purchase_status",
    "reads_run",
    "signup_plan",
    "specialist_label",
    "specialist_names",
    "subscription_of",
    "tool_named",
    "tool_names",
    "usage_read",
    "usage_summary",
    "user_with_memberships",
]
