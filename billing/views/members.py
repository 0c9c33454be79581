"""Settings → Members: invitations, roles, removals."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from billing import services
from billing.errors import BillingError
from billing.forms import InviteForm
from billing.models import Invitation, Membership
from billing.views.access import workspace_view


@require_http_methods(["GET", "POST"])
@workspace_view()
def settings_members(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.can_manage_billing:
            raise PermissionDenied("Only the workspace's owners and admins can invite.")
        if form.is_valid():
            try:
                services.invitation_create(
                    workspace=request.workspace,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                    link_base=request.build_absolute_uri(reverse("billing:invitation", args=["-"])).rsplit("/", 2)[0],
                )
            except BillingError as refusal:
                form.add_error("email", refusal.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("billing:settings_members")
    workspace = request.workspace
    context = {
        "form": form,
        "members": workspace.memberships.select_related("user").order_by("created_at"),
        "invitations": [i for i in workspace.invitations.order_by("-created_at") if i.is_pending],
        "can_manage": request.membership.can_manage_billing,
    }
    return render(request, "billing/settings_members.html", context, status=422 if form.errors else 200)


@require_POST
@workspace_view(manage=True)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=membership_id, workspace=request.workspace)
    try:
        services.membership_remove(membership=membership, actor=request.user)
    except BillingError as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, f"{membership.user.get_username()} was removed.")
    return redirect("billing:settings_members")


@require_POST
@workspace_view(manage=True)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=request.workspace)
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("billing:settings_members")
