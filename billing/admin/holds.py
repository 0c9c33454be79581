"""Holds (credits reserved for a long run): read-only, as the services left them.

A hold changes no balance, and it is placed, settled and released only through
``billing.services.holds``; staff look here to see what a workspace's running jobs reserve.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from billing.admin.cells import cell
from billing.admin.ledger import WorkspaceFilter, WorkspaceLinked
from billing.admin.paging import PeekPagedAdmin, ReadOnlyAdmin
from billing.credits import format_credits
from billing.models import Hold


@admin.register(Hold)
class HoldAdmin(WorkspaceLinked, PeekPagedAdmin, ReadOnlyAdmin):
    list_display = ["id", "created_at", "workspace_link", "credits", "status", "expires_at", "expired", "entry_link"]
    list_select_related = ["workspace"]
    list_filter = ["status", WorkspaceFilter]
    search_fields = ["=idempotency_key"]
    search_help_text = "An exact idempotency key (searched within the chosen workspace, or across all)."
    ordering = ["-id"]
    fields = [
        "workspace",
        "credits",  # the amount in credits, never the millicredits stored
        "status",
        "idempotency_key",
        "specialist",
        "created_at",
        "expires_at",
        "closed_at",
        "settled_entry",
        "metadata",
    ]

    @admin.display(description="credits")
    def credits(self, hold: Hold) -> str:
        return format_credits(hold.amount)

    @admin.display(description="expired", boolean=True)
    def expired(self, hold: Hold) -> bool:
        return hold.is_expired(timezone.now())

    @admin.display(description="usage entry")
    def entry_link(self, hold: Hold) -> str:
        return "" if hold.settled_entry_id is None else cell("entry_link", entry_id=hold.settled_entry_id)
