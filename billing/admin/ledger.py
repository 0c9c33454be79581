"""The ledger in the admin: read-only for everyone, superusers included, and fast at any size.

Every page is one LIMIT query newest first (billing/admin/paging.py: no COUNT), and every
filter runs down an index or stops early along the primary key:
- workspace: (workspace, -id), and with dates (workspace, created_at, id);
- kind: the partial (kind, -id) and (workspace, kind, -id) indexes of the non-usage kinds;
  usage is most of the table, so its rows are met at once walking the primary key;
- tool, bucket and "today / past 7 days / this month / this year": the newest rows match, so
  the walk down the primary key stops after a page;
- search: the exact idempotency key (one probe per workspace) or Stripe id (external_ref).
Filter choices come from the catalog table and from code, never from the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone

from billing.admin.amounts import credits_display
from billing.admin.cells import cell
from billing.admin.paging import PeekPagedAdmin, ReadOnlyAdmin
from billing.admin.queries import ledger_rows_newest_first, ledger_search_ids
from billing.bounds import id_parsed
from billing.credits import format_credits
from billing.csv_download import csv_download
from billing.models import Action, Hold, LedgerEntry, StripeEvent, Workspace


class IdFilter(admin.SimpleListFilter):
    """Filters on one foreign key by id; a value that is not an id is a bad link, not a crash."""

    field = ""

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        found = id_parsed(value)
        if found is None:
            raise IncorrectLookupParameters(f"{self.parameter_name} must be an id, not {value!r}")
        return queryset.filter(**{self.field: found})


class WorkspaceLinked:
    """A list column linking each row's workspace to its admin page (the rows carry ``workspace``)."""

    @admin.display(description="workspace")
    def workspace_link(self, row: LedgerEntry | Hold | StripeEvent) -> str:
        if row.workspace_id is None:  # a Stripe event about no workspace of ours
            return ""
        return cell("workspace_link", workspace_id=row.workspace_id, name=row.workspace.name)


class WorkspaceFilter(IdFilter):
    """One workspace's entries; shown once chosen (the workspace's page links here), never listed."""

    title = "workspace"
    parameter_name = "workspace"
    field = "workspace_id"

    def lookups(self, request, model_admin):
        # A filter with no choices is skipped altogether, so the chosen value is always one:
        # an unknown id then lists nothing (not everything), and a non-id is refused.
        value = self.value()
        if value is None:
            return []
        found = id_parsed(value)
        name = Workspace.objects.filter(pk=found).values_list("name", flat=True).first() if found is not None else None
        return [(value, name or f"{value} (no such workspace)")]


class ToolFilter(IdFilter):
    """The action charged; its choices are the catalog's rows (a dozen), not the ledger's."""

    title = "tool (action)"
    parameter_name = "action"
    field = "action_id"

    def lookups(self, request, model_admin):
        return list(Action.objects.order_by("sort_order", "key").values_list("pk", "label"))


class BucketFilter(admin.SimpleListFilter):
    """Entries that moved the plan bucket, or the top-up balance."""

    title = "bucket"
    parameter_name = "bucket"

    def lookups(self, request, model_admin):
        return LedgerEntry.Bucket.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value == LedgerEntry.Bucket.PLAN:
            return queryset.exclude(plan_delta=0)
        if value == LedgerEntry.Bucket.TOP_UP:
            return queryset.exclude(topup_delta=0)
        if value is not None:
            raise IncorrectLookupParameters(f"bucket must be plan or top_up, not {value!r}")
        return queryset


def _credits_text(milli: int | None, *, signed: bool = False) -> str:
    return "" if milli is None else format_credits(milli, signed=signed, grouped=False)


# The staff export: the customer's reason and staff's internal note side by side. Amounts are in
# credits as the admin shows them, exact to the thousandth, without thousands separators so a
# spreadsheet reads them as numbers.
CSV_COLUMNS = [
    "ID", "Time (UTC)", "Workspace ID", "Workspace", "Kind", "Tool", "Specialist", "Quantity",
    "Unit price (credits)", "Amount (credits)", "Plan bucket (credits)", "Top-up (credits)",
    "Plan balance after (credits)", "Top-up balance after (credits)", "BYOK", "Actor", "Reason",
    "Internal note", "Idempotency key", "External ref",
]  # fmt: skip
_CSV_FIELDS = [
    "id", "created_at", "workspace_id", "workspace__name", "kind", "action__key", "specialist_id", "quantity",
    "unit_price", "plan_delta", "topup_delta", "plan_balance_after", "topup_balance_after", "byok", "actor__email",
    "reason", "internal_note", "idempotency_key", "external_ref",
]  # fmt: skip


def _csv_rows(rows: Iterator[tuple]) -> Iterator[list[str]]:
    for (
        pk,
        created_at,
        workspace_id,
        workspace_name,
        kind,
        action_key,
        specialist,
        quantity,
        unit_price,
        plan_delta,
        topup_delta,
        plan_after,
        topup_after,
        byok,
        actor,
        reason,
        internal_note,
        key,
        ref,
    ) in rows:
        yield [
            str(pk),
            created_at.astimezone(UTC).isoformat(timespec="seconds"),
            str(workspace_id),
            workspace_name,
            kind,
            action_key or "",
            specialist or "",
            "" if quantity is None else str(quantity),
            _credits_text(unit_price),
            _credits_text(plan_delta + topup_delta, signed=True),
            _credits_text(plan_delta, signed=True),
            _credits_text(topup_delta, signed=True),
            _credits_text(plan_after),
            _credits_text(topup_after),
            "yes" if byok else "",
            actor or "",
            reason,
            internal_note,
            key,
            ref,
        ]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(WorkspaceLinked, PeekPagedAdmin, ReadOnlyAdmin):
    change_list_template = "admin/billing/ledgerentry/change_list.html"  # the CSV button, over the peek list
    list_display = [
        "id",
        "when",
        "workspace_link",
        "kind",
        "tool",
        "quantity",
        "credits_moved",
        "balances_after",
        "actor",
        "texts",
        "key",
    ]
    list_select_related = ["workspace", "action", "actor"]
    list_filter = [WorkspaceFilter, "kind", ToolFilter, BucketFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["idempotency_key", "external_ref"]  # exact matches only: see get_search_results
    search_help_text = "An exact idempotency key or Stripe id (cs_…, in_…, ch_…, pi_…)."
    ordering = ["-id"]
    list_per_page = 50
    actions = None  # no bulk delete, no selection
    # Every amount through a display method below: credits as the product writes them, never the
    # millicredits the columns hold.
    fields = [
        "id",
        "created_at",
        "workspace",
        "kind",
        "amount_credits",
        "plan_change",
        "topup_change",
        "plan_after",
        "topup_after",
        "action",
        "specialist",
        "quantity",
        "unit_price_credits",
        "list_price",
        "byok",
        "lead",
        "idempotency_key",
        "actor",
        "reason",
        "internal_note",
        "external_ref",
        "metadata",
    ]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        workspace = request.GET.get(WorkspaceFilter.parameter_name, "")
        # On the database the list reads (the replica, when there is one: PeekChangeList).
        ids = ledger_search_ids(term=term, workspace_id=id_parsed(workspace), using=queryset.db)
        return queryset.filter(pk__in=ids), False

    def get_urls(self):
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv),
            name=f"{self.opts.app_label}_{self.opts.model_name}_export",
        )
        return [export, *super().get_urls()]

    def export_csv(self, request: HttpRequest) -> StreamingHttpResponse | HttpResponseRedirect:
        """The changelist's entries (its filters and search) as CSV, streamed in chunks at any size."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:billing_ledgerentry_changelist") + "?e=1")
        rows = ledger_rows_newest_first(changelist.queryset, fields=_CSV_FIELDS)
        return csv_download(CSV_COLUMNS, _csv_rows(rows), f"sigora-ledger-{timezone.now():%Y%m%d-%H%M%S}.csv")

    @admin.display(description="when")
    def when(self, entry: LedgerEntry) -> str:
        return f"{timezone.localtime(entry.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="tool")
    def tool(self, entry: LedgerEntry) -> str:
        return entry.action.key if entry.action_id else ""

    @admin.display(description="change")
    def credits_moved(self, entry: LedgerEntry) -> str:
        parts = [
            f"{format_credits(delta, signed=True)} {bucket}"
            for delta, bucket in ((entry.plan_delta, "plan"), (entry.topup_delta, "top-up"))
            if delta
        ]
        return ", ".join(parts) or "0"

    @admin.display(description="reason (customer sees) / internal note")
    def texts(self, entry: LedgerEntry) -> str:
        """Both texts, each cut to a line: the entry's page shows them whole."""
        return cell("reason_and_note", reason=entry.reason, note=entry.internal_note)

    @admin.display(description="idempotency key")
    def key(self, entry: LedgerEntry) -> str:
        """Cut to fit the column; the whole key shows on hover."""
        return cell("key", key=entry.idempotency_key)

    @admin.display(description="after (plan / top-up)")
    def balances_after(self, entry: LedgerEntry) -> str:
        return f"{format_credits(entry.plan_balance_after)} / {format_credits(entry.topup_balance_after)}"

    # --- The entry's page: each amount in credits ---------------------------------------------

    amount_credits = credits_display("amount", "amount", signed=True)
    plan_change = credits_display("plan_delta", "plan bucket change", signed=True)
    topup_change = credits_display("topup_delta", "top-up change", signed=True)
    plan_after = credits_display("plan_balance_after", "plan bucket after")
    topup_after = credits_display("topup_balance_after", "top-up credits after")
    list_price = credits_display("list_amount", "list price (BYOK: what it would have cost)")

    @admin.display(description="unit price")
    def unit_price_credits(self, entry: LedgerEntry) -> str:
        if entry.unit_price is None:
            return ""
        unit = entry.action.get_unit_display() if entry.action_id else "unit"
        return f"{format_credits(entry.unit_price)} credits per {unit}"
