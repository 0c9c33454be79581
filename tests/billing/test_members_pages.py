"""Settings → Members, the invitation link and sign-up through it: what the inviter and the invitee see."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from billing.models import Invitation, Membership, Workspace
from tests.billing.test_views import PASSWORD, client_for, team  # noqa: F401  (team: the settings tests' fixture)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = reverse("billing:settings_members")


@pytest.fixture
def invite(client, team, django_capture_on_commit_callbacks):  # noqa: F811
    """The owner invites an address on the Members page; the invitation link's path and the page they get back."""

    def invite(email: str = "joiner@example.test", role: str = "admin"):
        client.force_login(team["owner"])
        with django_capture_on_commit_callbacks(execute=True):
            page = client.post(MEMBERS, {"email": email, "role": role}, follow=True)
        client.logout()
        link = re.search(r"Accept the invitation: https?://[^/]+(/\S+)", mail.outbox[-1].body).group(1)
        return link, page.content.decode()

    return invite


# --- Sign-up through an invitation ---------------------------------------------------------------------


def test_sign_up_from_an_invitation_asks_no_workspace_name_and_joins_that_workspace_only(client, team, invite):  # noqa: F811
    link, _ = invite(role="admin")
    signup = f"{reverse('billing:signup')}?next={quote(link)}"
    assert signup in client.get(link).content.decode()  # the invitation's "Create an account"
    page = client.get(signup).content.decode()
    assert 'name="workspace_name"' not in page and "Workspace name" not in page
    assert "Join Team" in page and "as <strong>admin</strong>" in page
    assert re.search(r'<input type="email" id="invited-email" value="joiner@example.test" readonly', page)
    assert f'name="next" value="{link}"' in page

    workspaces = Workspace.objects.count()
    # A forged email or workspace name changes nothing: the account is the invited address's.
    data = {"password": PASSWORD, "next": link, "email": "other@example.test", "workspace_name": "Mine"}
    response = client.post(reverse("billing:signup"), data, follow=True)
    assert response.redirect_chain[-1][0] == reverse("billing:settings_billing")
    html = response.content.decode()
    assert "Welcome to Team." in html and "selected>Team<" in html
    user = get_user_model().objects.get(username="joiner@example.test")
    assert response.wsgi_request.user == user
    assert [(m.workspace, m.role) for m in Membership.objects.filter(user=user)] == [(team["ws"], "admin")]
    assert Workspace.objects.count() == workspaces
    assert not get_user_model().objects.filter(username="other@example.test").exists()
    assert Invitation.objects.get().accepted_by == user


def test_the_sign_in_pages_create_an_account_link_keeps_the_invitation(client, team, invite):  # noqa: F811
    link, _ = invite()
    login = client.get(f"{reverse('login')}?next={quote(link)}").content.decode()
    signup = re.search(r'href="(/accounts/signup/\?next=[^"]+)"', login).group(1)
    page = client.get(signup.replace("&amp;", "&")).content.decode()
    assert "Join Team" in page and 'name="workspace_name"' not in page


def test_an_invited_sign_up_for_an_address_with_an_account_says_to_sign_in(client, team, invite):  # noqa: F811
    link, _ = invite()
    UserFactory(email="joiner@example.test")
    response = client.post(reverse("billing:signup"), {"password": PASSWORD, "next": link})
    assert response.status_code == 422
    html = response.content.decode()
    assert "An account with this email already exists; sign in instead." in html
    assert f"{reverse('login')}?next={quote(link)}" in html
    assert not Membership.objects.filter(workspace=team["ws"], user__username="joiner@example.test").exists()


def test_a_dead_invitation_link_leads_to_a_plain_sign_up_that_says_why(client, team, invite):  # noqa: F811
    link, _ = invite()
    Invitation.objects.update(revoked_at=Invitation.objects.get().created_at)
    page = client.get(f"{reverse('billing:signup')}?next={quote(link)}").content.decode()
    assert 'name="workspace_name"' in page and "Create your account" in page
    assert "The invitation you followed is not valid any more" in page
    assert 'name="next" value=""' in page  # not back to the dead link after signing up


def test_a_plain_sign_up_still_asks_for_a_workspace_name(client):
    page = client.get(reverse("billing:signup")).content.decode()
    assert 'name="workspace_name"' in page and "not valid any more" not in page


# --- Inviting the same address again -------------------------------------------------------------------


def test_inviting_again_tells_the_inviter_the_earlier_link_stops_and_that_link_says_why(client, team, invite):  # noqa: F811
    first, said = invite(role="member")
    assert "Invitation sent to joiner@example.test." in said and "no longer works" not in said
    second, said = invite(role="admin")
    assert (
        "A new invitation was sent to joiner@example.test. The link in the earlier invitation no longer works: "
        "they should use the one in the new email." in said
    )
    assert "This link replaces the one in our earlier email, which no longer works." in mail.outbox[-1].body
    old = client.get(first)
    assert old.status_code == 404
    assert "A newer invitation was sent to the same address" in old.content.decode()
    assert "Join Team" in client.get(second).content.decode()
    assert Invitation.objects.get(revoked_at__isnull=True).role == "admin"


def test_resend_on_a_pending_invitation_sends_a_new_link_and_says_the_old_one_stops(
    client,
    team,  # noqa: F811
    invite,
    django_capture_on_commit_callbacks,
):
    first, _ = invite(role="admin")
    invitation = Invitation.objects.get()
    owner = client_for(client, team["owner"])
    page = owner.get(MEMBERS).content.decode()
    resend = reverse("billing:invitation_resend", args=[invitation.pk])
    assert f'action="{resend}"' in page and ">Resend</button>" in page
    sent_before = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(resend, follow=True)
    assert "The link in the earlier invitation no longer works" in response.content.decode()
    assert len(mail.outbox) == sent_before + 1 and mail.outbox[-1].to == ["joiner@example.test"]
    renewed = Invitation.objects.get(revoked_at__isnull=True)
    assert renewed.pk != invitation.pk and renewed.role == "admin"
    assert client.get(first).status_code == 404
    # A closed invitation is not resent; members cannot resend; another workspace's is not found.
    assert "no longer pending" in owner.post(resend, follow=True).content.decode()
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1
    resend_renewed = reverse("billing:invitation_resend", args=[renewed.pk])
    assert client_for(client, team["member"]).post(resend_renewed).status_code == 403
    assert client_for(client, team["stranger"]).post(resend_renewed).status_code == 404
    assert Invitation.objects.get(revoked_at__isnull=True) == renewed


# --- Members ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_your_own_row_offers_no_remove(client, team, role):  # noqa: F811
    page = client_for(client, team[role]).get(MEMBERS).content.decode()
    mine = Membership.objects.get(workspace=team["ws"], user=team[role])
    others = Membership.objects.filter(workspace=team["ws"]).exclude(pk=mine.pk)
    assert reverse("billing:member_remove", args=[mine.pk]) not in page
    for membership in others:
        assert f'action="{reverse("billing:member_remove", args=[membership.pk])}"' in page
    assert page.count(">Remove</button>") == len(others) == 2
    (row,) = [r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if "(you)" in r]
    assert "Remove" not in row
