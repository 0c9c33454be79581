"""Issue 18: a sign-up's Free credits wait for its owner's email verification, once per address."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from api.credentials import service_token_create
from billing.addresses import address_normalized
from billing.credits import credits
from billing.errors import EmailUnverified, InsufficientCredits, InvalidRequest
from billing.models import (
    DailyUsage,
    EmailAddress,
    FreeCredits,
    FreeGrant,
    LedgerEntry,
    Membership,
    Plan,
    RefusalTally,
    Wallet,
    Workspace,
)
from billing.services import (
    account_signup,
    charge,
    charge_batch,
    email_verify,
    hold_place,
    invitation_accept,
    invitation_create,
    verification_send,
    verification_token_state,
    workspace_paid,
)
from billing.services.resets import periods_reset
from tests.billing.test_views import PASSWORD
from tests.conftest import balances
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

FREE = credits(10_000)
LINK = re.compile(r"http://\S+/accounts/verify/([^/\s]+)/")


@pytest.fixture
def signup(django_capture_on_commit_callbacks):
    """Sign up as ``email``; the new user, their workspace and the token of the emailed link."""

    def signup(email: str = "solo@example.test", name: str = "Solo"):
        with django_capture_on_commit_callbacks(execute=True):
            user = account_signup(email=email, password=PASSWORD, workspace_name=name)
        workspace = Workspace.objects.get(memberships__user=user)
        return user, workspace, LINK.search(mail.outbox[-1].body).group(1)

    return signup


def send_again(user, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        verification_send(user=user)
    return LINK.search(mail.outbox[-1].body).group(1)


def grants(workspace) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(workspace=workspace, kind=LedgerEntry.Kind.PLAN_GRANT))


def nothing_written(workspace) -> tuple:
    """What a refused charge must leave as it was."""
    wallet = Wallet.objects.get(workspace=workspace)
    return (
        wallet.plan_balance,
        wallet.topup_balance,
        wallet.revision,
        wallet.holds,
        LedgerEntry.objects.filter(workspace=workspace).count(),
        DailyUsage.objects.filter(workspace=workspace).count(),
    )


def ledger_clean() -> bool:
    call_command("verify_ledger", stdout=io.StringIO())  # raises CommandError on a problem
    return True


# --- Signing up -----------------------------------------------------------------------------------


def test_sign_up_grants_nothing_and_emails_a_verification_link(signup):
    user, ws, token = signup()
    assert (ws.unverified, ws.free_credits, ws.plan.key) == (True, FreeCredits.AWAITING, "free")
    assert balances(ws) == (0, 0)
    assert Wallet.objects.get(workspace=ws).period_allowance == 0
    assert not LedgerEntry.objects.filter(workspace=ws).exists()
    sent = mail.outbox[-1]
    assert sent.to == ["solo@example.test"] and "10,000 free credits" in sent.body
    html, kind = sent.alternatives[0]
    assert kind == "text/html" and token in html
    assert verification_token_state(token) == "live"
    assert not EmailAddress.objects.get(user=user).verified_at


def test_an_unverified_workspace_refuses_charges_batches_and_holds_writing_nothing(signup):
    _, ws, _ = signup()
    before = nothing_written(ws)
    with pytest.raises(EmailUnverified) as refused:
        charge(workspace=ws, action="claude-haiku", quantity=10, idempotency_key="k1")
    assert refused.value.code == "email_unverified" and refused.value.http_status == 403
    assert "verif" in refused.value.message
    with pytest.raises(EmailUnverified):
        charge_batch(
            workspace=ws,
            events=[
                {"action": "claude-haiku", "quantity": 10, "idempotency_key": "b1"},
                {"action": "gmail-send", "idempotency_key": "b2"},
            ],
        )
    with pytest.raises(EmailUnverified):
        hold_place(workspace=ws, amount=credits(1), idempotency_key="h1")
    assert nothing_written(ws) == before
    assert not RefusalTally.objects.filter(workspace=ws).exists()


def test_even_credits_staff_gave_are_locked_until_the_owner_verifies(signup):
    """The lock is the statement's own check, not the balance running dry."""
    from tests.conftest import fund

    _, ws, _ = signup()
    fund(ws, topup=500)
    before = nothing_written(ws)
    with pytest.raises(EmailUnverified):
        charge(workspace=ws, action="gmail-send", idempotency_key="k1")
    with pytest.raises(EmailUnverified):
        charge_batch(workspace=ws, events=[{"action": "gmail-send", "idempotency_key": f"b{n}"} for n in range(2)])
    with pytest.raises(EmailUnverified):
        hold_place(workspace=ws, amount=credits(1), idempotency_key="h1")
    assert nothing_written(ws) == before


# --- Verifying ------------------------------------------------------------------------------------


def test_the_link_verifies_on_post_once_and_grants_the_free_bucket_once(client, signup):
    user, ws, token = signup()
    url = reverse("billing:email_verify", args=[token])

    page = client.get(url)  # what a mail scanner does: nothing
    assert page.status_code == 200 and "Verify my email" in page.content.decode()
    assert verification_token_state(token) == "live" and not grants(ws)

    done = client.post(url)
    assert done.status_code == 200 and "is verified" in done.content.decode()
    ws.refresh_from_db()
    assert (ws.unverified, ws.free_credits) == (False, FreeCredits.GRANTED)
    assert balances(ws) == (FREE, 0)
    assert Wallet.objects.get(workspace=ws).period_allowance == FREE
    FreeGrant.objects.get(address="solo@example.test", workspace=ws)
    assert EmailAddress.objects.get(user=user).verified_at is not None

    again = client.post(url)  # the second click: a clear page, and still one grant
    assert again.status_code == 404 and "already used" in again.content.decode()
    with pytest.raises(InvalidRequest):
        email_verify(token=token)
    assert len(grants(ws)) == 1 and balances(ws) == (FREE, 0)

    entry = charge(workspace=ws, action="gmail-send", idempotency_key="k1")
    assert entry.plan_balance_after == FREE + entry.amount  # a usage entry's amount is negative
    assert ledger_clean()


def test_the_link_expires_after_three_days(client, signup):
    _, ws, token = signup()
    with time_machine.travel(timezone.now() + timedelta(days=3, seconds=1), tick=False):
        assert verification_token_state(token) == "expired"
        page = client.post(reverse("billing:email_verify", args=[token]))
        assert page.status_code == 404 and "expired" in page.content.decode()
        with pytest.raises(InvalidRequest, match="expired"):
            email_verify(token=token)
    ws.refresh_from_db()
    assert ws.unverified and not grants(ws)


def test_a_link_just_inside_three_days_still_works(signup):
    _, ws, token = signup()
    with time_machine.travel(timezone.now() + timedelta(days=3, seconds=-5), tick=False):
        email_verify(token=token)
    assert len(grants(ws)) == 1


def test_sending_again_kills_the_earlier_link_and_waits_a_minute(signup, django_capture_on_commit_callbacks):
    user, ws, first = signup()
    with pytest.raises(InvalidRequest, match="less than a minute"):
        send_again(user, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        second = send_again(user, django_capture_on_commit_callbacks)
        assert (verification_token_state(first), verification_token_state(second)) == ("replaced", "live")
        with pytest.raises(InvalidRequest, match="newer verification email"):
            email_verify(token=first)
        assert not grants(ws)
        email_verify(token=second)
    assert len(grants(ws)) == 1
    with pytest.raises(InvalidRequest, match="verified already"):
        verification_send(user=user)


def test_an_unknown_link_is_a_clear_404(client):
    page = client.get(reverse("billing:email_verify", args=["not-a-token"]))
    assert page.status_code == 404 and "do not know this link" in page.content.decode()


# --- One Free grant per address -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Me@Example.TEST", "me@example.test"),
        ("me+farm7@example.test", "me@example.test"),
        ("M.e.Smith+x@googlemail.com", "mesmith@gmail.com"),
        ("m.e@example.test", "m.e@example.test"),  # dots only matter at Gmail
        ("+tag@example.test", "+tag@example.test"),
    ],
)
def test_addresses_are_compared_as_one_mailbox(raw, normalized):
    assert address_normalized(raw) == normalized


def test_a_second_workspace_of_the_same_person_gets_no_free_bucket(signup):
    _, first, first_token = signup("me.farmer@gmail.com", "First")
    email_verify(token=first_token)
    _, second, second_token = signup("mefarmer+2@googlemail.com", "Second")
    email_verify(token=second_token)

    second.refresh_from_db()
    assert (second.unverified, second.free_credits, second.plan.key) == (False, FreeCredits.NONE, "free")
    assert balances(second) == (0, 0) and not grants(second)
    assert FreeGrant.objects.get(address="mefarmer@gmail.com").workspace == first
    # Unlocked, but with nothing to spend: an ordinary refusal, not "verify your email".
    with pytest.raises(InsufficientCredits):
        charge(workspace=second, action="gmail-send", idempotency_key="k1")
    assert balances(first) == (FREE, 0)
    assert ledger_clean()


def test_the_grant_is_unique_per_address_in_the_database(signup):
    _, _, token = signup()
    email_verify(token=token)
    other = WorkspaceFactory()
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        FreeGrant.objects.create(address="solo@example.test", workspace=other)


# --- Resets ---------------------------------------------------------------------------------------


def test_resets_grant_free_only_where_the_address_grant_is(signup, django_capture_on_commit_callbacks):
    waiting_owner, waiting, _ = signup("waiting@example.test", "Waiting")
    _, first, token = signup("twice@example.test", "First")
    email_verify(token=token)
    _, second, token = signup("twice+2@example.test", "Second")
    email_verify(token=token)

    later = timezone.now() + timedelta(days=32)
    summary = periods_reset(now=later, workspace_ids=[waiting.pk, first.pk, second.pk])
    assert summary.workspaces == 3
    assert balances(first) == (FREE, 0) and len(grants(first)) == 2
    for ws in (waiting, second):
        wallet = Wallet.objects.get(workspace=ws)
        assert (wallet.plan_balance, wallet.period_allowance) == (0, 0)
        assert wallet.period_end > later  # the period moved on all the same
        assert not grants(ws)
    # Verified in its second period (the first link has expired: a new one): that period's bucket, once.
    with time_machine.travel(later, tick=False):
        token = send_again(waiting_owner, django_capture_on_commit_callbacks)
        email_verify(token=token)
    assert balances(waiting) == (FREE, 0) and len(grants(waiting)) == 1
    assert grants(waiting)[0].idempotency_key.endswith(Wallet.objects.get(workspace=waiting).period_start.isoformat())
    assert ledger_clean()


# --- Invitations ----------------------------------------------------------------------------------


def test_accepting_an_invitation_from_its_link_verifies_that_address(signup, django_capture_on_commit_callbacks):
    user, own, _ = signup("joiner@example.test", "Own")
    team = WorkspaceFactory(name="Team")
    inviter = Membership.objects.get(workspace=team).user
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(
            workspace=team, email="joiner@example.test", role="member", invited_by=inviter, link_base="http://t/i"
        )
    token = re.search(r"http://t/i/(\S+)/", mail.outbox[-1].body).group(1)
    invitation_accept(token=token, user=user)

    assert EmailAddress.objects.get(user=user).verified_at is not None
    own.refresh_from_db()
    assert (own.unverified, own.free_credits) == (False, FreeCredits.GRANTED)
    assert balances(own) == (FREE, 0) and len(grants(own)) == 1


# --- Paying ---------------------------------------------------------------------------------------


def test_a_workspace_that_pays_is_unlocked_and_still_gets_free_when_verified(signup):
    from tests.conftest import fund

    _, ws, token = signup()
    fund(ws, topup=1_000)  # stands for the pack's credits; workspace_paid is what pack_paid calls
    workspace_paid(workspace_id=ws.pk)
    charge(workspace=ws, action="gmail-send", idempotency_key="k1")
    ws.refresh_from_db()
    assert (ws.unverified, ws.free_credits) == (False, FreeCredits.AWAITING)
    email_verify(token=token)
    ws.refresh_from_db()
    assert ws.free_credits == FreeCredits.GRANTED and len(grants(ws)) == 1


# --- Pages and the API ----------------------------------------------------------------------------


def test_the_billing_page_says_to_verify_and_sends_the_email_again(client, signup, django_capture_on_commit_callbacks):
    user, _, first = signup()
    client.force_login(user)
    page = client.get(reverse("billing:settings_billing")).content.decode()
    assert "Verify your email to start using your 10,000 free credits." in page
    assert reverse("billing:verification_resend") in page

    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        client.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            sent = client.post(reverse("billing:verification_resend"), follow=True)
    assert "We sent a new verification link" in sent.content.decode()
    assert verification_token_state(first) == "replaced"
    refused = client.post(reverse("billing:verification_resend"), follow=True)  # within the minute
    assert "less than a minute ago" in refused.content.decode()

    email_verify(token=LINK.search(mail.outbox[-1].body).group(1))
    assert "Verify your email" not in client.get(reverse("billing:settings_billing")).content.decode()


def test_the_sign_up_page_says_one_free_grant_per_address(client):
    page = client.get(reverse("billing:signup")).content.decode()
    assert "The Free credits come once per email address" in page


def test_the_api_refuses_an_unverified_workspace_with_403(client, signup):
    _, ws, _ = signup()
    staff = UserFactory(is_staff=True, is_superuser=True)
    _, secret = service_token_create(name="gateway", created_by=staff)
    headers = {"Authorization": f"Bearer {secret}", "Sigora-Workspace": str(ws.pk)}
    before = nothing_written(ws)
    for path, body in [
        ("charges", {"action": "gmail-send", "idempotency_key": "a1"}),
        ("charges/batch", {"events": [{"action": "gmail-send", "idempotency_key": "a2"}]}),
        ("holds", {"amount": "5", "idempotency_key": "a3"}),
    ]:
        answer = client.post(f"/api/v1/{path}", json.dumps(body), content_type="application/json", headers=headers)
        assert answer.status_code == 403, answer.content
        assert answer.json()["code"] == "email_unverified" and "verif" in answer.json()["message"]
    assert nothing_written(ws) == before


def test_existing_and_staff_made_workspaces_are_not_locked(db):
    ws = WorkspaceFactory()
    assert (ws.unverified, ws.free_credits) == (False, FreeCredits.GRANTED)
    assert balances(ws) == (Plan.objects.get(key="free").allowance, 0)
    assert get_user_model().objects.count() >= 1


def test_staff_resend_a_verification_from_the_workspace_admin(client, signup, django_capture_on_commit_callbacks):
    user, ws, first = signup()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(
                reverse("admin:billing_workspace_changelist"),
                {"action": "resend_verification", "_selected_action": [ws.pk]},
                follow=True,
            )
        assert "Verification email sent to 1 owner." in answer.content.decode()
        assert mail.outbox[-1].to == [user.email]
        assert verification_token_state(first) == "replaced"
        assert verification_token_state(LINK.search(mail.outbox[-1].body).group(1)) == "live"
