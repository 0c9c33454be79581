"""Staff's view of billing in /admin/: workspaces, credit adjustments, the ledger, the catalog, holds, Stripe events,
and the sign-in lockouts.

The ledger is read-only here for everyone, superusers included; every change of balance or
price goes through a service that records who made it. Importing the modules registers them.
"""

from billing.admin import catalog, holds, ledger, lockouts, stripe_events, workspaces

__all__ = ["catalog", "holds", "ledger", "lockouts", "stripe_events", "workspaces"]
