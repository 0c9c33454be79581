"""Low-balance alerts: once per period per threshold, to owners and admins, the same state the page shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import BalanceAlert, Membership
from billing.selectors import balance_level
from billing.services import charge
from billing.services.alerts import balance_alerts_send
from billing.services.resets import periods_reset
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    owner, admin, member = UserFactory(), UserFactory(), UserFactory()
    ws = WorkspaceFactory(owner=owner)
    Membership.objects.create(workspace=ws, user=admin, role="admin")
    Membership.objects.create(workspace=ws, user=member, role="member")
    return ws, owner, admin, member


def test_nothing_is_sent_while_the_balance_is_healthy(team):
    assert balance_alerts_send().sent == []
    assert mail.outbox == []


def test_under_20_percent_emails_owners_and_admins_once(team):
    ws, owner, admin, member = team
    fund(ws, plan=2_001, topup=0)  # 20.01 % of 10,000: not yet
    assert balance_alerts_send().sent == []
    charge(workspace=ws.pk, action="claude-haiku", quantity=20, idempotency_key="a")  # 2 credits
    summary = balance_alerts_send()
    assert summary.sent == [(ws.pk, "low")]
    [message] = mail.outbox
    assert sorted(message.to) == sorted([owner.email, admin.email]) and member.email not in message.to
    assert "1,999 credits left" in message.subject and "/settings/billing/" in message.body
    assert balance_alerts_send().sent == [] and len(mail.outbox) == 1  # once per period


def test_a_used_up_bucket_is_its_own_alert_and_a_new_period_rearms_both(team):
    ws, *_ = team
    fund(ws, plan=0, topup=50_000)  # top-ups keep the total high: only the bucket threshold
    assert balance_alerts_send().sent == [(ws.pk, "empty")]
    assert "used up" in mail.outbox[0].subject and "top-up credits are left" in mail.outbox[0].body
    fund(ws, plan=0, topup=0)
    assert balance_alerts_send().sent == [(ws.pk, "low")]
    periods_reset(now=timezone.now() + timedelta(days=32))  # a new period, a fresh bucket
    assert balance_alerts_send().sent == []
    fund(ws, plan=0, topup=0)
    assert sorted(kind for _, kind in balance_alerts_send().sent) == ["empty", "low"]
    assert BalanceAlert.objects.filter(workspace=ws).count() == 4


def test_a_failed_send_is_retried_next_run(team, settings):
    ws, *_ = team
    fund(ws, plan=0, topup=0)
    settings.EMAIL_BACKEND = "tests.jobs.test_alerts.BrokenBackend"
    summary = balance_alerts_send()
    assert summary.sent == [] and len(summary.failed) == 2
    assert not BalanceAlert.objects.filter(workspace=ws).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert len(balance_alerts_send().sent) == 2


def test_the_page_and_the_alerts_agree_on_the_level():
    assert balance_level(plan_balance=5, topup_balance=0, allowance=100) == "low"
    assert balance_level(plan_balance=20, topup_balance=0, allowance=100) == "ok"
    assert balance_level(plan_balance=0, topup_balance=500, allowance=100) == "empty"
    assert balance_level(plan_balance=10, topup_balance=9, allowance=100) == "low"


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp down")
