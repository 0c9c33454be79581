"""The second factor: the code asked after the password, enrolling an app, and Settings → Two-factor sign-in.

The password step is Django's sign-in view, untouched; ``SecondFactorMiddleware`` then sends a
session that owes a second factor here (billing/second_factor.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from io import BytesIO
from typing import TypeVar

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing import second_factor, services
from billing.errors import BillingError
from billing.forms import TwoFactorCodeForm, refusal_shown
from billing.views.access import workspace_view

T = TypeVar("T")


def _next(request: HttpRequest, default: str) -> str:
    """Where to go once the code is in: a path on this site, or ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _home(request: HttpRequest) -> str:
    return reverse("admin:index") if request.user.is_staff else reverse(settings.LOGIN_REDIRECT_URL)


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """After the password: a code from the app, or a backup code (each works once)."""
    next_url = _next(request, _home(request))
    if not second_factor.pending(request):
        return redirect(next_url)
    if not second_factor.has_device(request.user):
        if request.user.is_staff:
            return redirect(f"{reverse('billing:two_factor_enrol')}?next={next_url}")
        request.session[second_factor.SESSION_REQUIRED] = False  # turned off (or removed) since this sign-in
        return redirect(next_url)
    form = TwoFactorCodeForm(request.POST or None)
    device = _checked(request, form, lambda code: services.two_factor_check(user=request.user, code=code))
    if device is not None:
        second_factor.session_verified(request, device)
        if isinstance(device, StaticDevice):
            left = device.token_set.count()
            messages.warning(request, f"You signed in with a backup code: {left} left. Keep them somewhere safe.")
        return redirect(next_url)
    context = {"form": form, "next": next_url}
    return render(request, "registration/two_factor_verify.html", context, status=422 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: staff before anything else in /admin/, or anyone replacing theirs.

    A session may set up a new app only when the account has none yet, or once it passed the
    second factor: the password alone never replaces a device.
    """
    next_url = _next(request, _home(request))
    if second_factor.has_device(request.user) and not second_factor.is_verified(request.user):
        return redirect(f"{reverse('billing:two_factor_verify')}?next={next_url}")
    context = _enrolment(request)
    context["next"] = next_url
    return render(request, "registration/two_factor_enrol.html", context, status=_status(context))


@require_http_methods(["GET", "POST"])
@workspace_view()
def settings_two_factor(request: HttpRequest) -> HttpResponse:
    """Settings → Two-factor sign-in: owners and admins turn it on for themselves; whoever has it may turn it off."""
    user = request.user
    may_turn_on = user.is_staff or any(m.can_manage_billing for m in request.memberships)
    context: dict = {"may_turn_on": may_turn_on}
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "disable":
        form = TwoFactorCodeForm(request.POST)
        if _checked(request, form, lambda code: services.two_factor_disable(user=user, code=code)):
            request.session[second_factor.SESSION_REQUIRED] = False
            messages.success(request, "Two-factor sign-in is off: your password alone signs you in.")
            return redirect("billing:settings_two_factor")
        context["disable_form"] = form
    elif (action == "enrol" or request.GET.get("setup")) and may_turn_on:
        context.update(_enrolment(request))
    if not context.get("enrolled"):
        context["device"] = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        context["backup_codes_left"] = sum(
            device.token_set.count() for device in StaticDevice.objects.filter(user=user, confirmed=True)
        )
        context.setdefault("disable_form", TwoFactorCodeForm())
    return render(request, "billing/settings_two_factor.html", context, status=_status(context))


def _enrolment(request: HttpRequest) -> dict:
    """The set-up steps' data: the QR code and secret to scan, then (after a right code) the backup codes."""
    form = TwoFactorCodeForm(request.POST if request.method == "POST" else None, backup=False)
    enrolled = _checked(request, form, lambda code: services.two_factor_enrol_confirm(user=request.user, code=code))
    if enrolled is not None:
        second_factor.session_verified(request, enrolled.device)
        return {"enrolled": True, "backup_codes": [_grouped(code) for code in enrolled.backup_codes]}
    device = services.two_factor_enrol_begin(user=request.user)
    return {
        "enrol_form": form,
        "qr_code": _qr_data_url(device.config_url),
        "secret": _grouped(base64.b32encode(device.bin_key).decode()),
    }


def _checked(request: HttpRequest, form: TwoFactorCodeForm, check: Callable[[str], T]) -> T | None:
    """What ``check`` makes of the code a valid posted ``form`` carries; None (the refusal on the form) if refused."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        return check(form.cleaned_data["code"])
    except BillingError as refusal:
        refusal_shown(form, refusal)
        return None


def _status(context: dict) -> int:
    forms = [context.get("enrol_form"), context.get("disable_form")]
    return 422 if any(form is not None and form.errors for form in forms) else 200


def _grouped(text: str) -> str:
    """A secret or a code in groups of four, as people copy it."""
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _qr_data_url(text: str) -> str:
    """``text`` as a QR code: an SVG drawn here (no outside service sees the secret), as a data: URL for <img>."""
    out = BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()
