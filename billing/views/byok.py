"""Settings → BYOK Anthropic Key."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing import services
from billing.errors import BillingError
from billing.forms import ByokForm
from billing.views.access import workspace_view


@require_http_methods(["GET", "POST"])
@workspace_view()
def settings_byok(request: HttpRequest) -> HttpResponse:
    form = ByokForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.can_manage_billing:
            raise PermissionDenied("Only the workspace's owners and admins can change the BYOK key.")
        if request.POST.get("action") == "remove":
            services.byok_remove(workspace=request.workspace, actor=request.user)
            messages.success(request, "Your Anthropic key was removed: AI usage debits credits again.")
            return redirect("billing:settings_byok")
        if form.is_valid():
            try:
                services.byok_set(workspace=request.workspace, api_key=form.cleaned_data["api_key"], actor=request.user)
            except BillingError as refusal:
                form.add_error("api_key", refusal.message)
            else:
                messages.success(request, "Your Anthropic key is saved: AI usage no longer debits credits.")
                return redirect("billing:settings_byok")
    context = {"form": form, "can_manage": request.membership.can_manage_billing}
    return render(request, "billing/settings_byok.html", context, status=422 if form.errors else 200)
