"""People: signing up, inviting, joining and leaving workspaces, and the activity log."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.bounds import column_length
from billing.errors import InvalidRequest
from billing.models import Activity, Invitation, Membership, Workspace
from billing.services.verification import address_verify, verification_send
from billing.services.workspaces import workspace_create

logger = logging.getLogger(__name__)

INVITATION_DAYS = 7
INVITATION_GONE = "This invitation link is not valid any more (used, revoked or expired)."


def staff_may(user: AbstractBaseUser, permission: str) -> bool:
    """Whether ``user`` is active staff holding ``permission`` (a superuser holds every one)."""
    return user.is_active and user.is_staff and user.has_perm(permission)


def activity_record(*, workspace: Workspace, actor: AbstractBaseUser | None, verb: str, detail: str = "") -> Activity:
    return Activity.objects.create(workspace=workspace, actor=actor, verb=verb, detail=detail[:255])


def _email(raw: str, *, stored_in: type, field: str) -> str:
    """``raw`` as a valid email address, no longer than the column ``stored_in.field`` that keeps it."""
    email = (raw or "").strip().lower()
    max_length = column_length(stored_in, field)
    if len(email) > max_length:
        raise InvalidRequest(f"Enter an email address of at most {max_length} characters.", field="email")
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidRequest("Enter a valid email address.", field="email") from None
    return email


def _user_create(*, email: str, password: str) -> AbstractBaseUser:
    """A new user whose username is their email, with a password the validators accept."""
    User = get_user_model()
    email = _email(email, stored_in=User, field="username")  # the email is the username, a shorter column
    if User.objects.filter(username=email).exists():
        raise InvalidRequest("An account with this email already exists; sign in instead.", field="email")
    user = User(username=email, email=email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidRequest(" ".join(exc.messages), field="password") from None
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def account_signup(*, email: str, password: str, workspace_name: str, time_zone: str = "UTC") -> AbstractBaseUser:
    """A new user and their own Free workspace, which they own.

    The workspace's Free credits wait until the user verifies their address (issue 18): the
    verification email goes out when this commits.
    """
    user = _user_create(email=email, password=password)
    workspace_create(name=workspace_name, owner=user, time_zone=time_zone, awaiting_verification=True)
    verification_send(user=user)
    logger.info("signup user=%s", user.pk)
    return user


@transaction.atomic
def account_signup_invited(*, token: str, password: str) -> Membership:
    """A new user for the address an invitation was sent to, who joins that workspace and no other.

    Following an invitation is how they came: a workspace of their own would be one more to pay
    for and to switch away from, so none is made (they can be invited to or open others later).
    """
    invitation = invitation_lookup(token)
    if invitation is None:
        raise InvalidRequest(INVITATION_GONE, field="token")
    user = _user_create(email=invitation.email, password=password)
    membership = invitation_accept(token=token, user=user)
    logger.info("signup user=%s invitation=%s", user.pk, invitation.pk)
    return membership


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class InvitationSent:
    """An invitation just emailed, and the still-valid one to the same address it replaced, if any."""

    invitation: Invitation
    replaced: Invitation | None  # its link stopped working: the inviter is told so, and the new email says so


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, email: str, role: str, invited_by: AbstractBaseUser, link_base: str
) -> InvitationSent:
    """Invite ``email`` to join with ``role`` and email them the link (valid for a week).

    Inviting an address again renews its invitation: a new link, a new week, the role now chosen.
    Only a hash of a token is kept, so the earlier link cannot be sent again; it stops working
    instead (one pending invitation per address, a database constraint), and both the inviter and
    the new email say so rather than letting the first link quietly turn into "not found".
    """
    email = _email(email, stored_in=Invitation, field="email")
    if role not in Membership.Role.values:
        raise InvalidRequest("Choose a role: owner, admin or member.", field="role")
    if Membership.objects.filter(workspace=workspace, user__username=email).exists():
        raise InvalidRequest(f"{email} is already a member of this workspace.", field="email")
    now = timezone.now()
    earlier = (
        Invitation.objects.select_for_update()
        .filter(workspace=workspace, email=email, accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    if earlier is not None:
        earlier.revoked_at = now
        earlier.save(update_fields=["revoked_at"])
    replaced = earlier if earlier is not None and earlier.expires_at > now else None  # an expired link was dead already
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=_hash(token),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    link = f"{link_base.rstrip('/')}/{token}/"
    replaces = "" if replaced is None else "This link replaces the one in our earlier email, which no longer works.\n\n"
    transaction.on_commit(
        lambda: send_mail(
            subject=f"Join {workspace.name} on Sigora",
            message=(
                f"{invited_by.get_username()} invited you to the {workspace.name} workspace on Sigora as "
                f"{invitation.get_role_display().lower()}.\n\nAccept the invitation: {link}\n\n{replaces}"
                f"The link works for {INVITATION_DAYS} days."
            ),
            from_email=None,
            recipient_list=[email],
        )
    )
    detail = f"{email} as {role}" + ("" if replaced is None else ", a new link (the earlier one stopped working)")
    activity_record(workspace=workspace, actor=invited_by, verb=Activity.Verb.MEMBER_INVITED, detail=detail)
    return InvitationSent(invitation=invitation, replaced=replaced)


def invitation_lookup(token: str) -> Invitation | None:
    """The pending invitation this token opens, if any."""
    invitation = Invitation.objects.select_related("workspace").filter(token_hash=_hash(token or "")).first()
    return invitation if invitation is not None and invitation.is_pending else None


def invitation_closed(token: str) -> str | None:
    """Why an invitation link no longer works: "used", "replaced", "revoked" or "expired" (None: no such link)."""
    invitation = Invitation.objects.filter(token_hash=_hash(token or "")).first()
    if invitation is None or invitation.is_pending:
        return None
    if invitation.accepted_at is not None:
        return "used"
    if invitation.expires_at <= (invitation.revoked_at or timezone.now()):
        return "expired"
    # Revoked, then. Renewing revokes the earlier invitation at the very instant the new one is made.
    renewed = Invitation.objects.filter(
        workspace_id=invitation.workspace_id, email=invitation.email, created_at=invitation.revoked_at
    )
    return "replaced" if renewed.exists() else "revoked"


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    invitation = invitation_lookup(token)
    if invitation is None:
        raise InvalidRequest(INVITATION_GONE, field="token")
    if (user.email or user.get_username()).strip().lower() != invitation.email:
        raise InvalidRequest(
            f"This invitation is for {invitation.email}; sign in with that address to accept it.", field="token"
        )
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise InvalidRequest("This invitation was already used.", field="token")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(workspace=invitation.workspace, user=user, role=invitation.role)
    except IntegrityError:
        membership = Membership.objects.get(workspace=invitation.workspace, user=user)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    # The link came to this address and the user's own address is it (checked above): they read it.
    address_verify(user=user, email=invitation.email, now=invitation.accepted_at)
    activity_record(
        workspace=invitation.workspace, actor=user, verb=Activity.Verb.MEMBER_JOINED, detail=f"as {membership.role}"
    )
    return membership


def invitation_revoke(*, invitation: Invitation, actor: AbstractBaseUser) -> None:
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    activity_record(
        workspace=invitation.workspace, actor=actor, verb=Activity.Verb.INVITATION_REVOKED, detail=invitation.email
    )


@transaction.atomic
def membership_remove(*, membership: Membership, actor: AbstractBaseUser) -> None:
    """Remove a member; a workspace always keeps at least one owner."""
    owners = Membership.objects.select_for_update().filter(workspace=membership.workspace, role=Membership.Role.OWNER)
    if membership.role == Membership.Role.OWNER and owners.count() <= 1:
        raise InvalidRequest("A workspace needs at least one owner: make someone else owner first.", field="member")
    email = membership.user.get_username()
    membership.delete()
    activity_record(workspace=membership.workspace, actor=actor, verb=Activity.Verb.MEMBER_REMOVED, detail=email)
