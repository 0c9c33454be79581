"""Signing up, accepting an invitation, switching workspace, and the public price list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors, services
from billing.auth import PASSWORD_BACKEND
from billing.bounds import id_parsed
from billing.errors import BillingError
from billing.forms import InvitedSignupForm, SignupForm, refusal_shown
from billing.models import Invitation, Membership
from billing.services.verification import TOKEN_DAYS
from billing.views.access import SESSION_WORKSPACE


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    """The help page's price list, rendered from the catalog the engine charges by."""
    return render(request, "billing/pricing.html", {"catalog": selectors.catalog_overview()})


@require_POST
@login_required
def workspace_switch(request: HttpRequest) -> HttpResponse:
    workspace_id = id_parsed(request.POST.get("workspace"))
    if workspace_id is None:
        raise Http404("Choose one of your workspaces.")
    membership = get_object_or_404(Membership, user=request.user, workspace_id=workspace_id)
    request.session[SESSION_WORKSPACE] = membership.workspace_id
    return redirect("billing:settings_billing")


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    pending = services.invitation_lookup(token)
    if pending is None:
        closed = services.invitation_closed(token)
        if closed is None:
            raise Http404("There is no such invitation.")
        return render(request, "billing/invitation.html", {"closed": closed}, status=404)
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except BillingError as refusal:
            messages.error(request, refusal.message)
            return redirect(request.path)
        return _joined(request, membership)
    return render(request, "billing/invitation.html", {"invitation": pending})


@require_http_methods(["GET", "POST"])
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the verification email: a button that verifies (POST), so a mail scanner's GET uses nothing."""
    state = services.verification_token_state(token)
    if request.method == "POST" and state == "live":
        try:
            services.email_verify(token=token)
        except BillingError as refusal:  # a second click that lost the race: say what the link is now
            state = refusal.details.get("state")
        else:
            return render(request, "billing/verify_email.html", {"state": "verified", "days": TOKEN_DAYS})
    if state is None:
        state = "unknown"
    status = 200 if state == "live" else 404
    return render(request, "billing/verify_email.html", {"state": state, "days": TOKEN_DAYS}, status=status)


@require_POST
@login_required
def verification_resend(request: HttpRequest) -> HttpResponse:
    """The billing page's "send the email again": a new link to the signed-in user's own address."""
    try:
        services.verification_send(user=request.user)
    except BillingError as refusal:
        messages.error(request, refusal.message)
    else:
        sent = f"We sent a new verification link to {request.user.email}. It works for {TOKEN_DAYS} days."
        messages.success(request, sent)
    return redirect("billing:settings_billing")


def _joined(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Open the workspace just joined, and say so."""
    request.session[SESSION_WORKSPACE] = membership.workspace_id
    messages.success(request, f"Welcome to {membership.workspace.name}.")
    return redirect("billing:settings_billing")


def _invitation_token(next_url: str) -> str | None:
    """The token of the invitation link ``next_url`` returns to, if it is one: the sign-up came from it."""
    if not next_url.startswith("/"):
        return None
    try:
        match = resolve(next_url.split("?", 1)[0])
    except Resolver404:
        return None
    return match.kwargs["token"] if match.view_name == "billing:invitation" else None


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    token = _invitation_token(next_url)
    if token is not None:
        invitation = services.invitation_lookup(token)
        if invitation is not None:
            return _signup_invited(request, token=token, invitation=invitation, next_url=next_url)
        next_url = ""  # it leads to a dead link: a plain sign-up, saying why
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.account_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                workspace_name=form.cleaned_data["workspace_name"],
            )
        except BillingError as refusal:
            refusal_shown(form, refusal)
        else:
            login(request, user, backend=PASSWORD_BACKEND)
            # A path on this site only: redirect() would read any other text as a view's name.
            if next_url.startswith("/") and url_has_allowed_host_and_scheme(
                next_url, {request.get_host()}, request.is_secure()
            ):
                return HttpResponseRedirect(next_url)
            return redirect("billing:settings_billing")
    context = {"form": form, "next": next_url, "invitation_gone": token is not None, "plan": selectors.signup_plan()}
    return render(request, "registration/signup.html", context, status=422 if form.errors else 200)


def _signup_invited(request: HttpRequest, *, token: str, invitation: Invitation, next_url: str) -> HttpResponse:
    """Sign-up from an invitation link: the account is the invited address's, and joins that workspace only."""
    form = InvitedSignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.account_signup_invited(token=token, password=form.cleaned_data["password"])
        except BillingError as refusal:
            refusal_shown(form, refusal)
        else:
            login(request, membership.user, backend=PASSWORD_BACKEND)
            return _joined(request, membership)
    context = {"form": form, "next": next_url, "invitation": invitation}
    return render(request, "registration/signup.html", context, status=422 if form.errors else 200)
