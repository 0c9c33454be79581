"""Staff's view of billing in /admin/: workspaces, credit adjustments, the ledger, the catalog, holds, Stripe events.

The ledger is read-only here for everyone, superusers included; every change of balance or
price goes through a service that records who made it. Importing the modules registers them.
"""

from django.contrib import admin

from billing.admin import catalog, holds, ledger, stripe_events, workspaces

admin.site.site_header = "Sigora Billing & Credits: staff"
admin.site.site_title = "Sigora staff"
# The ledger's and the workspaces' lists need the width more than a second menu does.
admin.site.enable_nav_sidebar = False

__all__ = ["catalog", "holds", "ledger", "stripe_events", "workspaces"]
