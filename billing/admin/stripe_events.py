"""Stripe's webhook events as received: read-only, with a safe re-run for the failed ones.

Re-running goes through ``stripe_event_retry``: only a *failed* event runs again, under the
event row's lock, and every handler is idempotent (grants are keyed by the Stripe id), so a
double click or two staff at once credit nothing twice.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from billing.admin.ledger import WorkspaceFilter, WorkspaceLinked
from billing.admin.paging import PeekPagedAdmin, ReadOnlyAdmin
from billing.models import StripeEvent
from billing.second_factor import is_verified
from billing.services.accounts import staff_may
from billing.services.stripe_events import HANDLERS, stripe_event_retry

RETRY_PERMISSION = "billing.retry_stripeevent"
MAX_RETRIES_AT_ONCE = 100


class EventTypeFilter(admin.SimpleListFilter):
    """The event types the webhook handles (from code: no DISTINCT over the events)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(HANDLERS)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(type=value)


@admin.register(StripeEvent)
class StripeEventAdmin(WorkspaceLinked, PeekPagedAdmin, ReadOnlyAdmin):
    list_display = ["received_at", "event_id", "type", "status", "attempts", "workspace_link", "error_line"]
    list_select_related = ["workspace"]
    list_filter = ["status", EventTypeFilter, WorkspaceFilter]
    search_fields = ["=event_id"]
    search_help_text = "An exact event id (evt_…)."
    ordering = ["-received_at", "-id"]
    actions = ["retry_failed"]
    fields = [
        "event_id",
        "type",
        "status",
        "attempts",
        "workspace",
        "object_id",
        "livemode",
        "api_version",
        "stripe_created",
        "received_at",
        "processed_at",
        "error_text",
        "payload_text",
    ]
    readonly_fields = ["error_text", "payload_text"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # The second factor again, here: whatever let a session into the admin, a re-run needs a verified one.
        return staff_may(request.user, RETRY_PERMISSION) and is_verified(request.user)

    @admin.action(description="Re-run the selected failed events", permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset) -> None:
        # Which of the selected events failed, asked of the primary: the list may read a replica.
        selected = queryset.using(DEFAULT_DB_ALIAS).filter(status=StripeEvent.Status.FAILED)
        failed = list(selected.values_list("event_id", flat=True)[:MAX_RETRIES_AT_ONCE])
        if not failed:
            self.message_user(request, "None of the selected events had failed: nothing was re-run.", messages.WARNING)
            return
        self._report(request, [stripe_event_retry(event_id=event_id) for event_id in failed])

    def _report(self, request: HttpRequest, rows: list[StripeEvent]) -> None:
        still_failed = [row.event_id for row in rows if row.status == StripeEvent.Status.FAILED]
        done = len(rows) - len(still_failed)
        if done:
            self.message_user(request, f"Re-ran {done} event(s) successfully.", messages.SUCCESS)
        if still_failed:
            self.message_user(
                request, f"Still failing (see each event's error): {', '.join(still_failed)}", messages.ERROR
            )

    def get_urls(self):
        retry = path(
            "<path:object_id>/retry/",
            self.admin_site.admin_view(self.retry_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_retry",
        )
        return [retry, *super().get_urls()]

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """The change page's "Re-run" button: POST only, the same service as the action."""
        if not self.has_retry_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404("No such Stripe event.")
        if event.status != StripeEvent.Status.FAILED:
            self.message_user(request, f"{event.event_id} has not failed ({event.status}): nothing was re-run.")
        else:
            self._report(request, [stripe_event_retry(event_id=event.event_id)])
        return HttpResponseRedirect(reverse("admin:billing_stripeevent_change", args=[event.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_retry"] = (
            obj is not None and obj.status == StripeEvent.Status.FAILED and self.has_retry_permission(request)
        )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    @admin.display(description="handler error")
    def error_line(self, event: StripeEvent) -> str:
        lines = event.error.strip().splitlines()
        return lines[-1][:120] if lines else ""

    # Plain text: the admin shows it escaped, with its line breaks; the change form's style keeps the indentation.
    @admin.display(description="handler error")
    def error_text(self, event: StripeEvent) -> str:
        return event.error or "—"

    @admin.display(description="payload")
    def payload_text(self, event: StripeEvent) -> str:
        return json.dumps(event.payload, indent=2, sort_keys=True)
