"""Which sessions must pass a second factor, and what they may reach until they have.

Staff always need one (they can add credits to any workspace); anyone else needs one when they
turned it on (Settings → Two-factor sign-in). The password step is Django's sign-in, unchanged:
it signs the person in, and until the session is verified (django-otp's ``user.is_verified()``)
``SecondFactorMiddleware`` (billing/middleware.py) lets it reach only the code page, the
enrolment page (staff with no device yet) and sign-out. Whether a non-staff account has a device
is read once, at sign-in, into the session: an ordinary member's requests cost no query for it.
"""

from __future__ import annotations

import django_otp
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.urls import reverse
from django_otp.models import Device

SESSION_REQUIRED = "second_factor_required"


def is_verified(user: AbstractBaseUser) -> bool:
    """Whether this request's session passed a second factor (False where OTPMiddleware did not run)."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def has_device(user: AbstractBaseUser) -> bool:
    return django_otp.user_has_device(user, confirmed=True)


def required(request: HttpRequest) -> bool:
    """Whether this session's person must pass a second factor: staff, and whoever turned it on."""
    user = request.user
    return user.is_authenticated and (user.is_staff or bool(request.session.get(SESSION_REQUIRED)))


def pending(request: HttpRequest) -> bool:
    """Signed in with the password, and a second factor still owed."""
    return required(request) and not is_verified(request.user)


def step_url(request: HttpRequest) -> str:
    """Where a session owing its second factor goes: staff with no device enrol one; the rest type a code."""
    if request.user.is_staff and not has_device(request.user):
        return reverse("billing:two_factor_enrol")
    return reverse("billing:two_factor_verify")


def open_paths() -> frozenset[str]:
    """What a session owing its second factor may still reach."""
    return frozenset(reverse(name) for name in ("billing:two_factor_verify", "billing:two_factor_enrol", "logout"))


def remember_at_sign_in(sender, request: HttpRequest | None, user: AbstractBaseUser, **kwargs) -> None:
    """``user_logged_in``: note in the new session whether this account has a second factor to ask for."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_REQUIRED] = user.is_staff or has_device(user)


def session_verified(request: HttpRequest, device: Device) -> None:
    """The second factor passed: the session is verified by ``device`` and gets a new key (as a sign-in does)."""
    django_otp.login(request, device)
    request.session[SESSION_REQUIRED] = True
    request.session.cycle_key()
