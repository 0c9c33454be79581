"""Email verification, and the Free grant it unlocks: one per verified address (issue 18).

A sign-up's own workspace opens without its Free bucket and refuses charges (``Workspace.unverified``,
read by the charging statement) until its owner opens the link emailed to them. Verifying then
records the address's Free grant (``FreeGrant``, unique per normalised address) and posts the
bucket through the ledger, in one transaction; an address that already had its grant leaves the
workspace on Free with no bucket until it subscribes. Accepting an invitation from its email link
verifies the invited address the same way.

Links: a random token, of which only a hash is stored (``EmailToken``), valid for
``TOKEN_DAYS``, used once, and replaced (dead) when another is sent. The page behind the link
verifies on POST only, so a mail scanner that fetches the link does not use it up.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.addresses import address_normalized
from billing.credits import format_credits
from billing.errors import InvalidRequest
from billing.models import EmailAddress, EmailToken, FreeCredits, FreeGrant, LedgerEntry, Membership, Plan, Workspace
from billing.services.ledger_keys import plan_grant_key
from billing.services.wallets import wallet_lock
from billing.services.workspaces import period_grant

logger = logging.getLogger(__name__)

TOKEN_DAYS = 3
RESEND_AFTER = timedelta(minutes=1)
LINK_GONE = {
    "used": "This verification link was already used: your address is verified.",
    "replaced": "A newer verification email replaced this link: use the link in the latest one.",
    "expired": f"This verification link has expired (links work for {TOKEN_DAYS} days): send a new one from "
    "Settings → Billing & Credits.",
    None: "This verification link is not valid: check that it was copied whole.",
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _address(user: AbstractBaseUser) -> str:
    return (user.email or user.get_username()).strip().lower()


def email_verified(user: AbstractBaseUser) -> bool:
    return EmailAddress.objects.filter(user=user, verified_at__isnull=False).exists()


@transaction.atomic
def verification_send(*, user: AbstractBaseUser, now: datetime | None = None) -> EmailToken:
    """Email ``user`` a new verification link; the link sent before it stops working.

    Refused when one was sent less than ``RESEND_AFTER`` ago (the database knows when, so the
    limit holds across processes and machines), or when the address is verified already.
    """
    now = now or timezone.now()
    email = _address(user)
    if email_verified(user):
        raise InvalidRequest(f"{email} is verified already.", field="email")
    live = EmailToken.objects.select_for_update().filter(user=user, used_at__isnull=True, replaced_at__isnull=True)
    earlier = live.first()
    if earlier is not None:
        if now - earlier.created_at < RESEND_AFTER:
            raise InvalidRequest("A verification email was sent less than a minute ago: check your inbox.")
        earlier.replaced_at = now
        earlier.save(update_fields=["replaced_at"])
    EmailAddress.objects.get_or_create(user=user, defaults={"email": email})
    token = secrets.token_urlsafe(32)
    sent = EmailToken.objects.create(
        user=user, email=email, token_hash=_hash(token), created_at=now, expires_at=now + timedelta(days=TOKEN_DAYS)
    )
    context = {
        "link": settings.SITE_URL + reverse("billing:email_verify", args=[token]),
        "days": TOKEN_DAYS,
        "free_credits": format_credits(Plan.objects.get(key="free").allowance),
    }
    message = EmailMultiAlternatives(
        subject="Verify your email address for Sigora",
        body=render_to_string("emails/verify_email.txt", context),
        to=[email],
    )
    message.attach_alternative(render_to_string("emails/verify_email.html", context), "text/html")
    transaction.on_commit(message.send)
    logger.info("verification sent user=%s token=%s replaced=%s", user.pk, sent.pk, earlier.pk if earlier else None)
    return sent


def verification_token_state(token: str, *, now: datetime | None = None) -> str | None:
    """What a link's token is: "live", "used", "replaced", "expired", or None for no such link."""
    sent = EmailToken.objects.filter(token_hash=_hash(token or "")).first()
    if sent is None:
        return None
    if sent.used_at is not None:
        return "used"
    if sent.replaced_at is not None:
        return "replaced"
    return "expired" if sent.expires_at <= (now or timezone.now()) else "live"


@transaction.atomic
def email_verify(*, token: str, now: datetime | None = None) -> AbstractBaseUser:
    """Use a verification link: its user's address is verified, and the link is spent."""
    now = now or timezone.now()
    sent = EmailToken.objects.select_for_update().filter(token_hash=_hash(token or "")).first()
    state = verification_token_state(token, now=now) if sent is not None else None
    if state != "live":
        raise InvalidRequest(LINK_GONE[state], field="token", state=state or "unknown")
    sent.used_at = now
    sent.save(update_fields=["used_at"])
    address_verify(user=sent.user, email=sent.email, now=now)
    return sent.user


@transaction.atomic
def address_verify(*, user: AbstractBaseUser, email: str, now: datetime | None = None) -> list[Workspace]:
    """Record that ``user`` reads ``email``, and give their awaiting workspaces what that unlocks.

    Called by a verification link and by an accepted invitation. Each workspace the user owns that
    waits for verification stops refusing charges; the first of them (oldest) gets the Free grant
    if the address has not had one, the others none. Returns the workspaces it unlocked.
    """
    now = now or timezone.now()
    record, _ = EmailAddress.objects.select_for_update().get_or_create(user=user, defaults={"email": email})
    if record.verified_at is None or record.email != email:
        record.email, record.verified_at = email, now
        record.save(update_fields=["email", "verified_at"])
    # Any live link is spent too: the address is verified, so an older email must not do it again.
    EmailToken.objects.filter(user=user, used_at__isnull=True, replaced_at__isnull=True).update(replaced_at=now)
    owned = Membership.objects.filter(user=user, role=Membership.Role.OWNER).values("workspace_id")
    waiting = list(
        Workspace.objects.select_for_update(of=("self",))
        .filter(Q(unverified=True) | Q(free_credits=FreeCredits.AWAITING), pk__in=owned)
        .select_related("plan")
        .order_by("created_at", "pk")
    )
    for workspace in waiting:
        if workspace.free_credits == FreeCredits.AWAITING:
            _free_grant(workspace=workspace, user=user, email=email, now=now)
        workspace.unverified = False
        workspace.save(update_fields=["unverified", "free_credits"])
    logger.info("email verified user=%s workspaces=%s", user.pk, [w.pk for w in waiting])
    return waiting


def _free_grant(*, workspace: Workspace, user: AbstractBaseUser, email: str, now: datetime) -> None:
    """Give ``workspace`` the address's one Free grant, or none if the address had it (sets free_credits)."""
    try:
        with transaction.atomic():  # a savepoint: the unique address is what decides
            FreeGrant.objects.create(address=address_normalized(email), workspace=workspace, user=user, created_at=now)
    except IntegrityError:
        workspace.free_credits = FreeCredits.NONE
        logger.info("free grant refused workspace=%s user=%s: the address had one", workspace.pk, user.pk)
        return
    workspace.free_credits = FreeCredits.GRANTED
    if not workspace.plan.is_free:
        return  # it subscribed meanwhile: its plan's bucket is there; Free's comes if it ever returns to Free
    wallet = wallet_lock(workspace_id=workspace.pk)
    key = plan_grant_key(wallet.period_start)
    if LedgerEntry.objects.filter(workspace_id=workspace.pk, idempotency_key=key).exists():
        return
    period_grant(wallet, plan=workspace.plan, seats=workspace.seats, now=now, why=" (email verified)")


def workspace_paid(*, workspace_id: int) -> None:
    """A workspace paid (a pack or a subscription): paid credits are never locked behind verification."""
    Workspace.objects.filter(pk=workspace_id, unverified=True).update(unverified=False)
