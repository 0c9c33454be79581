"""Failed sign-ins and lockouts (django-axes' records): who is locked out now, and "Lift lockout".

Each row is one (account typed, client address, browser) with its failures and the last one's time;
an account or an address is locked while its failures within the cool-off reach the limit (settings,
Auth), so each row shows both counts. Seeing needs ``axes.view_accessattempt``; lifting,
``axes.delete_accessattempt`` (docs/staff-admin.md). Successful sign-ins are listed read-only.
"""

from __future__ import annotations

from axes.admin import AccessLogAdmin
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from billing import selectors
from billing.admin.paging import NoWrites
from billing.services import lockout_lift


class LockedOutFilter(admin.SimpleListFilter):
    title = "locked out now"
    parameter_name = "locked"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(selectors.lockout_rows_locked())
        if self.value() == "no":
            return queryset.exclude(selectors.lockout_rows_locked())
        return queryset


@admin.register(AccessAttempt)
class LockoutAdmin(admin.ModelAdmin):
    list_display = [
        "attempt_time",
        "username",
        "ip_address",
        "failures_since_start",
        "account_failures",
        "address_failures",
        "locked",
        "path_info",
        "user_agent",
    ]
    list_filter = [LockedOutFilter, "path_info"]
    search_fields = ["username", "ip_address"]
    search_help_text = "Part of an email typed at sign-in, or of a client address."
    ordering = ["-attempt_time"]
    fields = ["username", "ip_address", "user_agent", "path_info", "attempt_time", "failures_since_start"]
    readonly_fields = fields
    actions = ["lift_lockout"]

    def get_queryset(self, request):
        return selectors.lockout_rows(super().get_queryset(request), now=timezone.now())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "Lift lockout" clears the account's and the address's rows too
        return actions

    @admin.display(description="account's failures")
    def account_failures(self, obj):
        return obj.account_failures

    @admin.display(description="address's failures")
    def address_failures(self, obj):
        return obj.address_failures

    @admin.display(description="locked", boolean=True)
    def locked(self, obj):
        limit = settings.AXES_FAILURE_LIMIT
        return obj.account_failures >= limit or obj.address_failures >= limit

    @admin.action(description="Lift lockout (the rows' accounts and addresses)", permissions=["delete"])
    def lift_lockout(self, request: HttpRequest, queryset) -> None:
        pairs = set(queryset.values_list("username", "ip_address"))
        forgotten = lockout_lift(accounts_and_addresses=pairs, actor=request.user)
        self.message_user(
            request,
            f"Lifted: {len(pairs)} account and address pair(s) may sign in again ({forgotten} failure rows forgotten).",
            messages.SUCCESS,
        )


@admin.register(AccessLog)
class SignInLogAdmin(NoWrites, AccessLogAdmin):
    """Successful sign-ins and sign-outs, as axes records them: to look at only."""
