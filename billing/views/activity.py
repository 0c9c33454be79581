"""Settings → Activity: who changed what."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors
from billing.views.access import workspace_view


@require_GET
@workspace_view()
def settings_activity(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "billing/settings_activity.html",
        {"activities": selectors.activity_page(workspace_id=request.workspace.pk)},
    )
