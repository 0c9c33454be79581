"""Asking for a password reset: the same answer for every address, and a throttle per address and per client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse

from tests.conftest import page_without_csrf_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the top of an hour: the throttle's windows start on the hour
PER_EMAIL = settings.PASSWORD_RESET_LIMIT_PER_EMAIL
PER_IP = settings.PASSWORD_RESET_LIMIT_PER_IP


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def ask(client, email, *, ip="127.0.0.1", follow=False):
    return client.post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=ip, follow=follow)


def answer(response) -> tuple:
    """All a person sees of an answer: status, where it sends them, the pages on the way, the final page."""
    return (
        response.status_code,
        getattr(response, "redirect_chain", []),
        response.get("Location"),
        page_without_csrf_token(response),
    )


def test_the_answer_is_the_same_for_an_address_with_an_account_and_one_without(client, clock):
    UserFactory(email="owner@example.test")
    known = ask(client, "owner@example.test", follow=True)
    unknown = ask(client, "nobody@example.test", follow=True)
    assert "Check your email" in known.content.decode()
    assert answer(known) == answer(unknown)
    assert [message.to for message in mail.outbox] == [["owner@example.test"]]
    # Without following: the same redirect, headers and all but the cookies' and date's values.
    first, second = ask(client, "owner@example.test"), ask(client, "nobody@example.test")
    assert (first.status_code, first["Location"], sorted(first.headers)) == (
        second.status_code,
        second["Location"],
        sorted(second.headers),
    )


def test_past_the_limit_for_one_address_nothing_is_sent_and_the_answer_does_not_change(client, clock):
    UserFactory(email="owner@example.test")
    answers = []
    for n in range(PER_EMAIL + 3):
        # From a different client each time: this is the address's own limit.
        typed = "Owner@example.test " if n % 2 else "owner@example.test"
        answers.append(answer(ask(client, typed, ip=f"192.0.2.{n}", follow=True)))
    assert len(mail.outbox) == PER_EMAIL
    assert all(sent == answers[0] for sent in answers)  # the throttled answers are the sent ones
    # Another address is not held back; the next hour's window starts afresh.
    UserFactory(email="member@example.test")
    ask(client, "member@example.test", ip="192.0.2.100")
    assert len(mail.outbox) == PER_EMAIL + 1
    clock.move_to(START + timedelta(seconds=settings.PASSWORD_RESET_WINDOW_SECONDS))
    ask(client, "owner@example.test", ip="192.0.2.101")
    assert len(mail.outbox) == PER_EMAIL + 2


def test_past_the_limit_for_one_client_nothing_is_sent(client, clock):
    """Many addresses from one client (looking for accounts, or flooding mailboxes): after the limit, silence."""
    for n in range(PER_IP + 5):
        UserFactory(email=f"user{n}@example.test")
    for n in range(PER_IP + 5):
        response = ask(client, f"user{n}@example.test", ip="203.0.113.7")
        assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == PER_IP
    ask(client, f"user{PER_IP}@example.test", ip="198.51.100.1")  # another client
    assert len(mail.outbox) == PER_IP + 1
