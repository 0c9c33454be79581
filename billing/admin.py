"""Staff's view of billing. The ledger is read-only here for everyone, superusers included."""

from django.contrib import admin

from billing.credits import format_credits
from billing.models import Action, LedgerEntry, Membership, Plan, Specialist, TopUpPack, Wallet, Workspace


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows from the admin; services own them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ["name", "key", "price_cents", "allowance_credits", "per_seat", "is_active"]

    @admin.display(description="Monthly credits")
    def allowance_credits(self, plan):
        return format_credits(plan.allowance)


@admin.register(TopUpPack)
class TopUpPackAdmin(ReadOnlyAdmin):
    list_display = ["key", "credits", "price_cents", "is_active"]

    @admin.display(description="Credits")
    def credits(self, pack):
        return format_credits(pack.amount)


@admin.register(Specialist)
class SpecialistAdmin(ReadOnlyAdmin):
    list_display = ["label", "key", "sort_order"]


@admin.register(Action)
class ActionAdmin(ReadOnlyAdmin):
    list_display = ["key", "label", "category", "specialist", "unit", "unit_price", "max_quantity", "is_active"]
    list_filter = ["category", "specialist"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "plan", "seats", "time_zone", "created_at", "closed_at"]
    list_filter = ["plan"]
    search_fields = ["name", "memberships__user__email"]
    inlines = [MembershipInline]
    readonly_fields = ["plan", "seats", "created_at"]

    def has_add_permission(self, request):
        return False  # workspaces open through sign-up (workspace_create), which also opens the wallet

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["workspace", "plan_credits", "topup_credits", "period_start", "period_end"]
    list_select_related = ["workspace"]

    @admin.display(description="Plan bucket")
    def plan_credits(self, wallet):
        return format_credits(wallet.plan_balance)

    @admin.display(description="Top-up credits")
    def topup_credits(self, wallet):
        return format_credits(wallet.topup_balance)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "workspace", "kind", "action", "quantity", "amount_credits", "idempotency_key"]
    list_filter = ["kind"]
    list_select_related = ["workspace", "action"]
    search_fields = ["=idempotency_key", "=external_ref"]
    show_full_result_count = False

    @admin.display(description="Credits")
    def amount_credits(self, entry):
        return format_credits(entry.amount, signed=True)
