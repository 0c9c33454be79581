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
from billing.services.accounts import INVITATION_DAYS
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
                sent = _invite(request, email=form.cleaned_data["email"], role=form.cleaned_data["role"])
            except BillingError as refusal:
                form.add_error("email", refusal.message)
            else:
                _say_sent(request, sent)
                return redirect("billing:settings_members")
    workspace = request.workspace
    context = {
        "form": form,
        "members": workspace.memberships.select_related("user").order_by("created_at"),
        "me": request.membership,
        "invitations": [i for i in workspace.invitations.order_by("-created_at") if i.is_pending],
        "can_manage": request.membership.can_manage_billing,
        "invitation_days": INVITATION_DAYS,
    }
    return render(request, "billing/settings_members.html", context, status=422 if form.errors else 200)


def _invite(request: HttpRequest, *, email: str, role: str) -> services.InvitationSent:
    link_base = request.build_absolute_uri(reverse("billing:invitation", args=["-"])).rsplit("/", 2)[0]
    return services.invitation_create(
        workspace=request.workspace, email=email, role=role, invited_by=request.user, link_base=link_base
    )


def _say_sent(request: HttpRequest, sent: services.InvitationSent) -> None:
    email = sent.invitation.email
    if sent.replaced is None:
        messages.success(request, f"Invitation sent to {email}.")
    else:
        messages.success(
            request,
            f"A new invitation was sent to {email}. The link in the earlier invitation no longer works: "
            "they should use the one in the new email.",
        )


@require_POST
@workspace_view(manage=True)
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=request.workspace)
    if not invitation.is_pending:
        messages.error(request, f"The invitation to {invitation.email} is no longer pending: invite them again below.")
        return redirect("billing:settings_members")
    try:
        sent = _invite(request, email=invitation.email, role=invitation.role)
    except BillingError as refusal:
        messages.error(request, refusal.message)
    else:
        _say_sent(request, sent)
    return redirect("billing:settings_members")


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
