"""Signing in: Django's model backend, whose per-request user read also brings the memberships.

Every signed-in request reads the user (the session names them); every settings page and
fragment then needs the user's memberships with their workspace, plan and wallet, the balance
poll every few seconds among them. One query returns both (the memberships with their user
joined: ``selectors.user_with_memberships``), so a settings request makes two round trips
before its own reads (session, user) instead of three; a user in no workspace costs one more.
Authentication itself (passwords, permissions, ``is_active``) is ModelBackend's, unchanged.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from billing.selectors import user_with_memberships


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
