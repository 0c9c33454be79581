"""The catalog in the admin: plans, packs and actions edited through services, each change recorded.

Saving a plan, pack or action never calls ``save()`` on the row: the changed fields go to
the service ``catalog_update`` (what ``plan_update``, ``pack_update`` and ``action_update``
call), which checks the catalog's rules, locks the row, applies the change and records who
changed what (old → new) in ``CatalogChange``, shown on the row's own page and in its own
read-only list. Nothing is added or deleted here:
retire a plan, pack or action by unticking "is active", so history keeps its rows.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst

from billing.admin.paging import ReadOnlyAdmin
from billing.admin.queries import catalog_history
from billing.credits import format_cents, format_credits
from billing.errors import InvalidRequest
from billing.forms import CreditsField as CreditsInput
from billing.forms import refusal_shown
from billing.models import Action, CatalogChange, CreditsField, Plan, Specialist, TopUpPack
from billing.services import catalog_changes_check
from billing.services.catalog import EDITABLE, MODELS, catalog_subject, catalog_update

Subject = CatalogChange.Subject


def _model_field(subject: str, name: str):
    try:
        return MODELS[subject]._meta.get_field(name)
    except (KeyError, FieldDoesNotExist):
        return None


def change_field_name(change: CatalogChange) -> str:
    """The changed field as the catalog's forms name it ("unit price"), not its column ("unit_price")."""
    field = _model_field(change.subject, change.field)
    return str(field.verbose_name) if field is not None else change.field


def change_value(change: CatalogChange, value: Any) -> str:
    """An old or new value as the admin shows it everywhere: credits in credits, cents as money."""
    if isinstance(value, int) and not isinstance(value, bool):
        if isinstance(_model_field(change.subject, change.field), CreditsField):
            return f"{format_credits(value)} credits"
        if change.field.endswith("_cents"):
            return format_cents(value)
    return "—" if value is None else str(value)


class CatalogForm(forms.ModelForm):
    """A plan, pack or action edit, checked against the catalog's rules before the service runs."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changes = {name: cleaned[name] for name in self.changed_data if name in cleaned}
        try:
            catalog_changes_check(subject=catalog_subject(self.instance), row=self.instance, changes=changes)
        except InvalidRequest as error:
            refusal_shown(self, error)
        return cleaned


class CatalogAdmin(admin.ModelAdmin):
    """Shared by the three catalog admins: no add or delete, saves through the subject's service."""

    subject: str = ""
    form = CatalogForm
    change_form_template = "admin/billing/catalog_change_form.html"
    history_limit = 50
    credits_help: dict[str, str] = {}  # each amount field's help, in credits

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """Amounts are typed and shown in credits ("80,000", "0.1"), exact to a thousandth, never in millicredits."""
        if isinstance(db_field, CreditsField):
            return CreditsInput(
                label=f"{capfirst(db_field.verbose_name)} (credits)",
                help_text=self.credits_help.get(db_field.name, ""),
                required=not db_field.blank,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE[self.subject]}
        if changes:
            catalog_update(self.subject, obj.pk, actor=request.user, changes=changes)

    def save_related(self, request, form, formsets, change):
        """Nothing related is edited here; the service wrote everything."""

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:  # its recorded changes, listed under the form (the change form template)
            context["catalog_changes"] = [
                (change, change_field_name(change), change_value(change, change.old_value),
                 change_value(change, change.new_value))
                for change in catalog_history(subject=self.subject, subject_id=obj.pk, limit=self.history_limit)
            ]  # fmt: skip
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(Plan)
class PlanAdmin(CatalogAdmin):
    subject = Subject.PLAN
    list_display = ["name", "key", "price", "allowance_credits", "per_seat", "sort_order", "is_active"]
    fields = ["key", "per_seat", *EDITABLE[Subject.PLAN]]
    readonly_fields = ["key", "per_seat"]
    credits_help = {"allowance": "The monthly bucket (per seat for a per-seat plan), e.g. 80,000."}

    @admin.display(description="Monthly price")
    def price(self, plan: Plan) -> str:
        return format_cents(plan.price_cents) + (" per seat" if plan.per_seat else "")

    @admin.display(description="Monthly credits")
    def allowance_credits(self, plan: Plan) -> str:
        return format_credits(plan.allowance) + (" per seat" if plan.per_seat else "")


@admin.register(TopUpPack)
class TopUpPackAdmin(CatalogAdmin):
    subject = Subject.PACK
    list_display = ["key", "credits", "price", "sort_order", "is_active"]
    fields = ["key", *EDITABLE[Subject.PACK]]
    readonly_fields = ["key"]
    credits_help = {"amount": "The credits the pack adds, e.g. 100,000."}

    @admin.display(description="Credits")
    def credits(self, pack: TopUpPack) -> str:
        return format_credits(pack.amount)

    @admin.display(description="Price")
    def price(self, pack: TopUpPack) -> str:
        return format_cents(pack.price_cents)


@admin.register(Action)
class ActionAdmin(CatalogAdmin):
    subject = Subject.ACTION
    list_display = ["key", "label", "category", "specialist", "unit", "price", "max_quantity", "is_active"]
    list_filter = ["category", "specialist", "is_active"]
    list_select_related = ["specialist"]
    fields = ["key", "category", "specialist", "unit", *EDITABLE[Subject.ACTION]]
    readonly_fields = ["key", "category", "specialist", "unit"]
    credits_help = {
        "unit_price": "Credits per unit (token, page or call), to a thousandth: Claude Haiku's "
        "1 credit per 10 tokens is 0.1. Applies to charges from the change on."
    }

    @admin.display(description="Price (credits per unit)")
    def price(self, action: Action) -> str:
        return f"{format_credits(action.unit_price)} per {action.unit}"


@admin.register(Specialist)
class SpecialistAdmin(ReadOnlyAdmin):
    list_display = ["label", "key", "sort_order"]


@admin.register(CatalogChange)
class CatalogChangeAdmin(ReadOnlyAdmin):
    list_display = ["changed_at", "subject", "subject_key", "field_name", "old", "new", "changed_by"]
    list_filter = ["subject", "field"]
    list_select_related = ["changed_by"]
    search_fields = ["=subject_key"]
    search_help_text = "A plan's, pack's or action's exact key."
    ordering = ["-id"]
    show_facets = admin.ShowFacets.NEVER
    # The values through the display methods below: credits and money as everywhere else.
    fields = ["changed_at", "changed_by", "subject", "subject_key", "field_name", "old", "new"]
    readonly_fields = fields

    @admin.display(description="field")
    def field_name(self, change: CatalogChange) -> str:
        return change_field_name(change)

    @admin.display(description="old value")
    def old(self, change: CatalogChange) -> str:
        return change_value(change, change.old_value)

    @admin.display(description="new value")
    def new(self, change: CatalogChange) -> str:
        return change_value(change, change.new_value)
