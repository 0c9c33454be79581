"""Whose workspace a settings view runs in: ``workspace_view`` and the memberships it reads.

Every settings view runs inside the signed-in user's current workspace, resolved from their
memberships only: another workspace's data is simply not reachable, and an id that is not
theirs answers 404.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from billing import selectors
from billing.models import Membership

SESSION_WORKSPACE = "workspace_id"


def user_memberships(request: HttpRequest) -> list[Membership]:
    """All the user's memberships (one query), the current workspace's first."""
    # The wallet comes along: the balance region (polled every few seconds) then needs no query of its own.
    read = getattr(request.user, "billing_memberships", None)  # read with the user (billing.auth)
    memberships = list(read) if read is not None else selectors.memberships_of(user_id=request.user.pk)
    chosen = request.session.get(SESSION_WORKSPACE)
    memberships.sort(key=lambda m: m.workspace_id != chosen)
    return memberships


def workspace_view(*, manage: bool = False) -> Callable:
    """Run the view in the user's current workspace; ``manage``: owners and admins only (403)."""

    def decorate(view: Callable) -> Callable:
        @login_required
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            memberships = user_memberships(request)
            if not memberships:
                raise Http404("You are not a member of any workspace.")
            membership = memberships[0]
            if manage and not membership.can_manage_billing:
                raise PermissionDenied("Only the workspace's owners and admins can do this.")
            request.membership = membership
            request.memberships = memberships
            request.workspace = membership.workspace
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
