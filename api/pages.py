"""Settings → API keys: owners and admins create and revoke the workspace's keys; members view.

A new key's secret is shown once, in the response to the POST that made it (never stored,
never in a redirect or the session); afterwards a key is known by its prefix. With JS that POST
is htmx's and its answer replaces the keys' region in place, so the page's address stays the
GET's: a reload asks for the page again and shows no secret. No response of the page may be
kept by a cache (the back/forward cache included), whether it holds the secret or not yet.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api.credentials import MAX_NAME_LENGTH, api_key_create, api_key_revoke
from api.models import ApiKey
from billing.errors import BillingError
from billing.views.access import workspace_view


@require_http_methods(["GET", "POST"])
@never_cache
@workspace_view()
def settings_api_keys(request: HttpRequest) -> HttpResponse:
    can_manage = request.membership.can_manage_billing
    created = secret = None
    error = ""
    name = ""
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only the workspace's owners and admins can create API keys.")
        name = request.POST.get("name", "")
        try:
            created, secret = api_key_create(workspace=request.workspace, name=name, actor=request.user)
        except BillingError as refusal:
            error = refusal.message
        else:
            name = ""
    keys = ApiKey.objects.filter(workspace=request.workspace).select_related("created_by").order_by("-id")
    context = {
        "keys": keys,
        "created": created,
        "secret": secret,
        "error": error,
        "name": name,
        "can_manage": can_manage,
        "docs_url": reverse("api:openapi-view"),
        "name_max_length": MAX_NAME_LENGTH,
    }
    template = "api/settings_api_keys.html#keys" if request.htmx else "api/settings_api_keys.html"
    return render(request, template, context, status=422 if error else 200)


@require_POST
@workspace_view(manage=True)
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=key_id, workspace=request.workspace)
    api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"The key {api_key.prefix}… was revoked: it stops working at once.")
    return redirect("api_keys:settings_api_keys")
