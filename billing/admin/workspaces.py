"""Workspaces in the admin: the list support starts from, and the credit adjustment form.

A workspace is read-only here (plan, seats, time zone, budget and members change through
their own services and pages); credits change only through "Adjust credits", which writes
a ledger entry with the staff user, a description the customer reads and an internal note
for staff.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from billing.admin.amounts import credits_display
from billing.admin.paging import NoWrites, ReadOnlyAdmin
from billing.credits import MAX_MILLICREDITS, format_credits
from billing.errors import IdempotencyConflict, InvalidRequest
from billing.forms import CreditsField, refusal_shown
from billing.models import LedgerEntry, Membership, Wallet, Workspace
from billing.second_factor import is_verified
from billing.services import credits_adjust, credits_adjust_preview, verification_send
from billing.services.accounts import staff_may
from billing.services.adjustments import MAX_REASON_LENGTH
from billing.services.adjustments import PERMISSION as ADJUST_PERMISSION


def new_adjustment_token() -> str:
    """The idempotency key one adjustment form carries from its first step to the confirmation."""
    return secrets.token_hex(16)


class AdjustCreditsForm(forms.Form):
    amount = CreditsField(
        minimum=-MAX_MILLICREDITS,
        label="Amount (credits)",
        help_text="Positive adds, negative takes away: 500, -12.5, 1,000. Exact to a thousandth of a credit.",
    )
    bucket = forms.ChoiceField(choices=LedgerEntry.Bucket.choices, widget=forms.RadioSelect)
    # Two texts with two readers: the customer reads the description in their transactions and
    # CSV; the note stays with staff (the admin and the staff export).
    description = forms.CharField(
        label="Description (the customer sees this)",
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "placeholder": "Goodwill credit for the outage of May 3"}),
        help_text="Required. Shown word for word in the customer's transactions and CSV: write it for them, "
        "with no ticket numbers, names or internal detail.",
    )
    internal_note = forms.CharField(
        label="Internal note (staff only)",
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Why you made it, kept on the ledger entry with your name; the customer never sees it. "
        "The support ticket helps.",
    )
    token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)


class WorkspaceStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("closed", "Closed"), ("past_due", "Past due"), ("byok", "BYOK key set")]

    def queryset(self, request, queryset):
        match self.value():
            case "open":
                return queryset.filter(closed_at__isnull=True)
            case "closed":
                return queryset.filter(closed_at__isnull=False)
            case "past_due":
                return queryset.filter(subscription__past_due_since__isnull=False)
            case "byok":
                return queryset.exclude(byok_key_encrypted="")
        return queryset


class MembershipInline(NoWrites, admin.TabularInline):
    """Who belongs, read-only: roles change on the Members page, which keeps the last owner."""

    model = Membership
    extra = 0
    fields = ["user", "email", "role", "created_at"]
    readonly_fields = fields
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @admin.display(description="email")
    def email(self, membership: Membership) -> str:
        return membership.user.email


@admin.register(Workspace)
class WorkspaceAdmin(ReadOnlyAdmin):
    # Read-only (see the module's docstring): workspaces open through sign-up (workspace_create),
    # which also opens the wallet; credits change only through the adjust view below.
    list_display = [
        "name",
        "plan",
        "seats",
        "plan_bucket",
        "topup",
        "total",
        "period_end",
        "byok",
        "past_due",
        "closed_at",
    ]
    list_select_related = ["plan", "wallet", "subscription"]
    list_filter = ["plan", WorkspaceStateFilter, "unverified", "free_credits"]
    actions = ["resend_verification"]
    search_fields = ["name", "memberships__user__email", "=stripe_customer_id"]
    search_help_text = "Name, a member's email, or the exact Stripe customer id (cus_…)."
    ordering = ["-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    inlines = [MembershipInline]
    fields = [
        "name",
        "plan",
        "seats",
        "time_zone",
        "created_at",
        "closed_at",
        "balances",
        "period",
        "byok",
        "past_due",
        "budget",
        "stripe_customer_id",
        "unverified",
        "free_credits",
    ]
    readonly_fields = ["balances", "period", "byok", "past_due", "budget", "stripe_customer_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan", "wallet", "subscription")

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        # The second factor again, here: whatever let a session into the admin, money moves only for a verified one.
        return staff_may(request.user, ADJUST_PERMISSION) and is_verified(request.user)

    def has_resend_verification_permission(self, request: HttpRequest) -> bool:
        return staff_may(request.user, "billing.view_workspace")  # it mails the owner their own link, nothing more

    @admin.action(description="Resend the owner's verification email", permissions=["resend_verification"])
    def resend_verification(self, request: HttpRequest, queryset) -> None:
        """Each selected workspace's unverified owners get a new link (the earlier one stops working)."""
        owners = Membership.objects.filter(
            workspace__in=queryset, role=Membership.Role.OWNER, user__email_address__verified_at__isnull=True
        ).select_related("user")
        sent = 0
        for membership in owners:
            try:
                verification_send(user=membership.user)
            except InvalidRequest as refusal:
                self.message_user(request, f"{membership.user.email}: {refusal.message}", messages.WARNING)
            else:
                sent += 1
        self.message_user(request, f"Verification email sent to {sent} owner{'s' if sent != 1 else ''}.")

    # --- The list's columns --------------------------------------------------------------

    @staticmethod
    def _wallet(workspace: Workspace):
        return getattr(workspace, "wallet", None)

    @admin.display(description="plan bucket")
    def plan_bucket(self, workspace: Workspace) -> str:
        wallet = self._wallet(workspace)
        return format_credits(wallet.plan_balance) if wallet else "—"

    @admin.display(description="top-up")
    def topup(self, workspace: Workspace) -> str:
        wallet = self._wallet(workspace)
        return format_credits(wallet.topup_balance) if wallet else "—"

    @admin.display(description="total")
    def total(self, workspace: Workspace) -> str:
        wallet = self._wallet(workspace)
        return format_credits(wallet.total) if wallet else "—"

    @admin.display(description="period ends")
    def period_end(self, workspace: Workspace):
        wallet = self._wallet(workspace)
        return wallet.period_end if wallet else None

    @admin.display(description="BYOK", boolean=True)
    def byok(self, workspace: Workspace) -> bool:
        return workspace.has_byok

    @admin.display(description="past due", boolean=True)
    def past_due(self, workspace: Workspace) -> bool:
        subscription = getattr(workspace, "subscription", None)
        return subscription is not None and subscription.past_due_since is not None

    # --- The change page's read-outs ---------------------------------------------------------

    @admin.display(description="balances")
    def balances(self, workspace: Workspace) -> str:
        wallet = self._wallet(workspace)
        if wallet is None:
            return "no wallet"
        return (
            f"plan bucket {format_credits(wallet.plan_balance)} of {format_credits(wallet.period_allowance)}, "
            f"top-up {format_credits(wallet.topup_balance)}, total {format_credits(wallet.total)} credits"
        )

    @admin.display(description="monthly budget")
    def budget(self, workspace: Workspace) -> str:
        if workspace.monthly_budget is None:
            return "none"
        return f"{format_credits(workspace.monthly_budget)} credits a period"

    @admin.display(description="period")
    def period(self, workspace: Workspace) -> str:
        wallet = self._wallet(workspace)
        return f"{wallet.period_start:%Y-%m-%d %H:%M} → {wallet.period_end:%Y-%m-%d %H:%M} UTC" if wallet else "—"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["records_links"] = {
                "ledger": reverse("admin:billing_ledgerentry_changelist") + f"?workspace={obj.pk}",
                "events": reverse("admin:billing_stripeevent_changelist") + f"?workspace={obj.pk}",
            }
            if self.has_adjust_permission(request):
                context["adjust_url"] = reverse("admin:billing_workspace_adjust", args=[obj.pk])
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- Adjust credits ----------------------------------------------------------------------

    def get_urls(self):
        adjust = path(
            "<path:object_id>/adjust/",
            self._adjusters_only(self.admin_site.admin_view(self.adjust_view)),
            name="billing_workspace_adjust",
        )
        return [adjust, *super().get_urls()]

    def _adjusters_only(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """Signed-in people without the permission get 403 (staff or not); the anonymous, the login page."""

        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.user.is_authenticated and not self.has_adjust_permission(request):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return guarded

    def adjust_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Step 1: amount, bucket, description, note. Step 2: balances before and after, confirm. Then the entry.

        The form's token is the adjustment's idempotency key, generated when the form is first
        shown and carried through both steps, so a confirmation posted twice adjusts once.
        """
        workspace = self.get_object(request, unquote(object_id))  # who may: checked by _adjusters_only
        if workspace is None:
            raise Http404("No such workspace.")
        preview = None
        if request.method != "POST":
            form = AdjustCreditsForm(initial={"token": new_adjustment_token(), "bucket": LedgerEntry.Bucket.TOP_UP})
        else:
            form = AdjustCreditsForm(request.POST)
            if form.is_valid() and "edit" not in request.POST:
                data = form.cleaned_data
                try:
                    if "confirm" in request.POST:
                        entry = credits_adjust(
                            workspace_id=workspace.pk,
                            bucket=data["bucket"],
                            amount=data["amount"],
                            description=data["description"],
                            internal_note=data["internal_note"],
                            actor=request.user,
                            idempotency_key=data["token"],
                        )
                        return self._adjusted(request, workspace, entry)
                    preview = credits_adjust_preview(
                        workspace_id=workspace.pk,
                        bucket=data["bucket"],
                        amount=data["amount"],
                        description=data["description"],
                        internal_note=data["internal_note"],
                    )
                except InvalidRequest as error:
                    refusal_shown(form, error)
                except IdempotencyConflict:
                    form.add_error(
                        None,
                        "This form was already used for a different adjustment. Nothing was changed; "
                        "open the form again to make another one.",
                    )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Adjust credits: {workspace.name}",
            "workspace": workspace,
            "wallet": workspace.wallet,
            "form": form,
            "preview": preview,
            "change_url": reverse("admin:billing_workspace_change", args=[workspace.pk]),
        }
        template = "admin/billing/workspace/adjust_confirm.html" if preview else "admin/billing/workspace/adjust.html"
        return TemplateResponse(request, template, context)

    def _adjusted(self, request: HttpRequest, workspace: Workspace, entry: LedgerEntry) -> HttpResponseRedirect:
        if entry.replayed:
            self.message_user(
                request,
                f"That adjustment was already made (entry #{entry.pk}); nothing more was changed.",
                messages.INFO,
            )
        else:
            # The ledger entry is the record; the workspace's History page points at it too.
            self.log_change(request, workspace, f"Adjusted credits: ledger entry #{entry.pk}.")
            self.message_user(
                request,
                f"Adjusted {workspace.name}: {format_credits(entry.amount, signed=True)} credits "
                f"(entry #{entry.pk}). Balances now: plan bucket {format_credits(entry.plan_balance_after)}, "
                f"top-up {format_credits(entry.topup_balance_after)}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:billing_workspace_change", args=[workspace.pk]))


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "plan_credits", "topup_credits", "period_start", "period_end"]
    list_select_related = ["workspace"]
    ordering = ["-workspace_id"]
    show_full_result_count = False
    # The amounts through the display methods below, in credits: never the millicredits stored.
    fields = [
        "workspace",
        "plan_credits",
        "topup_credits",
        "allowance",
        "period_start",
        "period_end",
        "period_anchor",
        "spent_this_period",
        "spent_today",
        "payments_processing",
    ]
    readonly_fields = fields

    plan_credits = credits_display("plan_balance", "Plan bucket", unit="")
    topup_credits = credits_display("topup_balance", "Top-up credits", unit="")
    allowance = credits_display("period_allowance", "Plan credits granted this period", unit="")
    spent_this_period = credits_display("period_spend", "Spent this period (for the monthly budget)", unit="")

    @admin.display(description="Spent on its last day of usage, by specialist (for daily caps)")
    def spent_today(self, wallet: Wallet) -> str:
        if wallet.day is None or not wallet.day_spend:
            return "nothing yet"
        spent = ", ".join(f"{key} {format_credits(amount)}" for key, amount in sorted(wallet.day_spend.items()))
        return f"{wallet.day:%Y-%m-%d}: {spent}"
