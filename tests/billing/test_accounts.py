"""billing/services/accounts.py: signing up (on one's own or through an invitation) and inviting again."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from billing.errors import InvalidRequest
from billing.models import Activity, Invitation, Membership, Workspace
from billing.services import (
    account_signup,
    account_signup_invited,
    invitation_closed,
    invitation_create,
    invitation_lookup,
    invitation_revoke,
)
from tests.billing.test_views import PASSWORD
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

LINK_BASE = "http://testserver/invitations"


@pytest.fixture
def team(db):
    owner = UserFactory(email="owner@example.test")
    return {"ws": WorkspaceFactory(owner=owner, name="Team"), "owner": owner}


@pytest.fixture
def invite(team, django_capture_on_commit_callbacks):
    """Invite an address to the team as the owner; the token from the emailed link, and what the service said."""

    def invite(email: str = "joiner@example.test", role: str = "admin"):
        with django_capture_on_commit_callbacks(execute=True):
            sent = invitation_create(
                workspace=team["ws"], email=email, role=role, invited_by=team["owner"], link_base=LINK_BASE
            )
        token = re.search(rf"{LINK_BASE}/(\S+)/", mail.outbox[-1].body).group(1)
        return token, sent

    return invite


# --- Signing up through an invitation ----------------------------------------------------------------


def test_signing_up_through_an_invitation_joins_that_workspace_and_opens_none_of_ones_own(team, invite):
    token, _ = invite(role="admin")
    workspaces = Workspace.objects.count()
    membership = account_signup_invited(token=token, password=PASSWORD)
    user = get_user_model().objects.get(username="joiner@example.test")
    assert (membership.user, membership.workspace, membership.role) == (user, team["ws"], "admin")
    assert user.email == "joiner@example.test" and user.check_password(PASSWORD)
    assert list(Membership.objects.filter(user=user)) == [membership]  # this workspace only
    assert Workspace.objects.count() == workspaces
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    assert invitation_lookup(token) is None  # used up
    assert Activity.objects.filter(workspace=team["ws"], actor=user, verb=Activity.Verb.MEMBER_JOINED).exists()


@pytest.mark.parametrize("close", ["revoke", "expire", "use"])
def test_a_closed_invitation_signs_nobody_up(team, invite, close):
    token, sent = invite()
    if close == "revoke":
        invitation_revoke(invitation=sent.invitation, actor=team["owner"])
    elif close == "use":
        account_signup_invited(token=token, password=PASSWORD)
    users = get_user_model().objects.count()
    later = timezone.now() + timedelta(days=8 if close == "expire" else 0)
    with time_machine.travel(later), pytest.raises(InvalidRequest) as refusal:
        account_signup_invited(token=token, password=PASSWORD)
    assert refusal.value.field == "token" and "not valid any more" in refusal.value.message
    assert get_user_model().objects.count() == users


@pytest.mark.parametrize(
    ("existing", "password", "field"),
    [(False, "123", "password"), (True, PASSWORD, "email")],
)
def test_a_refused_invited_sign_up_writes_nothing_and_leaves_the_invitation_open(
    team, invite, existing, password, field
):
    if existing:
        UserFactory(email="joiner@example.test")
    token, _ = invite()
    users = get_user_model().objects.count()
    with pytest.raises(InvalidRequest) as refusal:
        account_signup_invited(token=token, password=password)
    assert refusal.value.field == field
    assert get_user_model().objects.count() == users
    assert not Membership.objects.filter(workspace=team["ws"], user__username="joiner@example.test").exists()
    assert invitation_lookup(token) is not None


def test_a_plain_sign_up_still_opens_the_persons_own_free_workspace(db):
    user = account_signup(email="solo@example.test", password=PASSWORD, workspace_name="Solo")
    (membership,) = Membership.objects.filter(user=user)
    assert (membership.workspace.name, membership.role, membership.workspace.plan.key) == ("Solo", "owner", "free")


# --- Inviting the same address again ------------------------------------------------------------------


def test_inviting_again_renews_the_invitation_and_says_the_earlier_link_stopped(team, invite):
    first_token, first = invite(role="member")
    assert first.replaced is None
    assert "replaces" not in mail.outbox[-1].body

    with time_machine.travel(timezone.now() + timedelta(days=3), tick=False):
        second_token, second = invite(role="admin")
        assert second.replaced == first.invitation  # what the inviter is told about
        assert second.invitation.role == "admin"
        assert second.invitation.expires_at == timezone.now() + timedelta(days=7)  # a new week from now
        assert "This link replaces the one in our earlier email, which no longer works." in mail.outbox[-1].body
        assert invitation_lookup(first_token) is None
        assert invitation_lookup(second_token) == second.invitation
        assert (invitation_closed(first_token), invitation_closed(second_token)) == ("replaced", None)
    (renewed,) = Activity.objects.filter(workspace=team["ws"], verb=Activity.Verb.MEMBER_INVITED).order_by("-id")[:1]
    assert "the earlier one stopped working" in renewed.detail


def test_inviting_again_after_the_first_expired_replaces_no_live_link(team, invite):
    first_token, _ = invite()
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert invitation_closed(first_token) == "expired"
        _, second = invite()
        assert second.replaced is None  # the old link had stopped already: nothing to warn about
        assert "replaces" not in mail.outbox[-1].body
        assert invitation_closed(first_token) == "expired"


def test_a_closed_link_says_why(team, invite):
    used, _ = invite(email="a@example.test")
    account_signup_invited(token=used, password=PASSWORD)
    revoked, sent = invite(email="b@example.test")
    invitation_revoke(invitation=sent.invitation, actor=team["owner"])
    assert invitation_closed(used) == "used"
    assert invitation_closed(revoked) == "revoked"
    assert invitation_closed("no-such-token") is None
