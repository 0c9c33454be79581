"""Whose workspaces: a user's memberships, each with what every settings request shows of its workspace."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from billing.models import Membership, Subscription, Workspace

# What every settings request (the balance poll every few seconds among them) reads of a
# membership's workspace: its plan and wallet (the balance), its subscription (the past-due
# banner, the portal button). All joined, so the list is one query.
_LOADED = ("workspace__plan", "workspace__wallet", "workspace__subscription")


def _memberships() -> QuerySet[Membership]:
    return Membership.objects.select_related(*_LOADED).order_by("created_at", "id")


def _with_live_subscription(membership: Membership) -> Membership:
    """Set ``workspace.live_subscription``: the running subscription, None when there is none or it ended.

    A subscription Stripe ended is history: only a running one changes what the page offers.
    """
    workspace: Workspace = membership.workspace
    try:
        subscription: Subscription | None = workspace.subscription
    except Subscription.DoesNotExist:
        subscription = None
    workspace.live_subscription = subscription if subscription is not None and subscription.is_live else None
    return membership


def memberships_of(*, user_id: int) -> list[Membership]:
    """The user's memberships, oldest first, each with its workspace, plan, wallet and
    ``workspace.live_subscription`` loaded (one query)."""
    return [_with_live_subscription(m) for m in _memberships().filter(user_id=user_id)]


def user_with_memberships(*, user_id: int) -> tuple[AbstractBaseUser | None, list[Membership]]:
    """The user and their memberships as ``memberships_of`` gives them (None: no such user).

    One query for a user in a workspace: the memberships with their user joined. A user in none
    (just signed up through an invitation not yet accepted, or removed) costs a second query, for
    the user alone.
    """
    memberships = [_with_live_subscription(m) for m in _memberships().select_related("user").filter(user_id=user_id)]
    if not memberships:
        return get_user_model().objects.filter(pk=user_id).first(), []
    user = memberships[0].user
    for membership in memberships[1:]:
        membership.user = user  # one user object for all, as the signed-in request.user
    return user, memberships
