"""Signing in: Django's model backend, whose per-request user read also brings the memberships.

Every signed-in request reads the user (the session names them); every settings page and
fragment then needs the user's memberships with their workspace, plan and wallet, the balance
poll every few seconds among them. One query returns both (the memberships with their user
joined: ``selectors.user_with_memberships``), so a settings request makes two round trips
before its own reads (session, user) instead of three; a user in no workspace costs one more.
Authentication itself (passwords, permissions, ``is_active``) is ModelBackend's, unchanged.

Before it, django-axes refuses a sign-in whose account or address is locked out (settings, Auth),
counting each attempt against the account ``attempt_username`` names.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from billing.selectors import user_with_memberships

# The backend that checks passwords, named where a view signs someone in itself (right after sign-up):
# with axes' backend before it, Django cannot guess which one to record in the session.
PASSWORD_BACKEND = "billing.auth.MembershipsBackend"


class MembershipsBackend(ModelBackend):
    def get_user(self, user_id):
        try:
            user, memberships = user_with_memberships(user_id=int(user_id))
        except (TypeError, ValueError):  # a session naming no valid id: signed out, as ModelBackend does
            return None
        if user is None or not self.user_can_authenticate(user):
            return None
        user.billing_memberships = memberships  # read once with the user: see billing.views.access.user_memberships
        return user


def attempt_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The account a sign-in attempt counts against: the email typed, trimmed and lower-cased.

    Usernames are lower-cased emails (services.accounts), so "Demo@…" and " demo@…" are the same
    account's guesses, and changing the case of a letter does not start a fresh count.
    """
    typed = credentials.get("username") if credentials else request.POST.get("username")
    if not isinstance(typed, str):
        return None
    return typed.strip().lower()[:255] or None  # 255: axes' username column
