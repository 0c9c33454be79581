"""Failed sign-ins lock out (django-axes): per account and per client address, until the cool-off passes.

The customer's sign-in page and the admin's; the lockout page (429) says what happened and when to
try again; the client's address is the connection's unless a trusted proxy wrote it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import RequestFactory
from django.urls import reverse

from sigora.client_ip import client_ip
from tests.conftest import page_without_csrf_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # the factory's
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COOL_OFF = settings.AXES_COOLOFF_TIME
LIMIT = settings.AXES_FAILURE_LIMIT


def sign_in(client, username, password, *, url=None, ip="127.0.0.1", **headers):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def locked_page(response) -> str:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in paused" in page and "too many failed sign-ins" in page
    return page


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def test_fifty_wrong_passwords_then_the_right_one_is_refused_until_the_cool_off(client, clock):
    owner = UserFactory(email="owner@example.test")
    statuses = []
    for _ in range(50):
        statuses.append(sign_in(client, "owner@example.test", "not the password").status_code)
        clock.shift(timedelta(seconds=2))
    # The form says "wrong" until the limit; the attempt reaching it, and every one after, gets the lockout page.
    assert statuses == [200] * (LIMIT - 1) + [429] * (50 - LIMIT + 1)
    locked_at = START + timedelta(seconds=2 * (LIMIT - 1))  # the failure that reached the limit
    ends = locked_at + COOL_OFF

    right = sign_in(client, "owner@example.test", PASSWORD)
    page = locked_page(right)
    assert f'Try again after <strong><time datetime="{ends.isoformat()}">{ends:%H:%M} UTC</time>' in page
    assert int(right["Retry-After"]) == (ends - (START + timedelta(seconds=100))).total_seconds()
    assert not signed_in(client)

    clock.move_to(ends - timedelta(seconds=1))
    locked_page(sign_in(client, "owner@example.test", PASSWORD))
    assert not signed_in(client)
    # Trying while locked did not make the wait longer: the time given holds.
    clock.move_to(ends + timedelta(seconds=1))
    response = sign_in(client, "owner@example.test", PASSWORD)
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)


def test_the_admins_sign_in_locks_out_the_same_way(client, clock):
    """The admin has no sign-in form of its own: its login page sends staff to the site's (then the code step)."""
    staff = UserFactory(email="staff@example.test", is_staff=True, is_superuser=True)
    url = client.get(reverse("admin:login"), {"next": "/admin/"})["Location"]
    assert url == f"{reverse('login')}?next=/admin/"
    for _ in range(50):
        sign_in(client, "staff@example.test", "not the password", url=url)
    locked_page(sign_in(client, "staff@example.test", PASSWORD, url=url))
    assert not signed_in(client)
    clock.move_to(START + COOL_OFF + timedelta(seconds=1))
    response = sign_in(client, "staff@example.test", PASSWORD, url=url)
    assert response.status_code == 302 and response["Location"] == "/admin/"  # on to the second factor from there
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_one_address_guessing_across_many_accounts_is_locked_out(client, clock):
    """A password sprayed over many accounts, one guess each, from one address."""
    UserFactory(email="victim@example.test")
    for n in range(LIMIT):
        assert sign_in(client, f"someone{n}@example.test", "Summer2026!", ip="203.0.113.7").status_code in (200, 429)
    page = locked_page(sign_in(client, "victim@example.test", PASSWORD, ip="203.0.113.7"))
    assert "Try again after" in page
    # The account itself is not locked: its owner, elsewhere, signs in.
    assert sign_in(client, "victim@example.test", PASSWORD, ip="198.51.100.20").status_code == 302


def test_one_account_guessed_from_many_addresses_is_locked_out(client, clock):
    """A guess spread over many addresses, one each, and over the case of the email's letters."""
    UserFactory(email="owner@example.test")
    typed = ["owner@example.test", "Owner@Example.test", " OWNER@example.test "]
    for n in range(LIMIT):
        sign_in(client, typed[n % len(typed)], f"guess {n}", ip=f"198.51.100.{n + 1}")
    locked_page(sign_in(client, "owner@example.test", PASSWORD, ip="192.0.2.1"))
    assert not signed_in(client)


def test_the_lockout_page_is_the_same_for_an_account_that_does_not_exist(client, clock):
    UserFactory(email="owner@example.test")
    pages = {}
    for username in ("owner@example.test", "nobody@example.test"):
        for n in range(LIMIT):
            sign_in(client, username, "wrong", ip=f"192.0.2.{n + 1}")
        response = sign_in(client, username, "wrong", ip="192.0.2.200")
        locked_page(response)
        pages[username] = page_without_csrf_token(response)
    assert pages["owner@example.test"] == pages["nobody@example.test"]


def test_below_the_limit_a_success_signs_in(client, clock):
    owner = UserFactory(email="owner@example.test")
    for _ in range(LIMIT - 1):
        assert sign_in(client, "owner@example.test", "wrong").status_code == 200
    assert sign_in(client, "owner@example.test", PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


# --- The client's address ---------------------------------------------------------------------------


def test_a_forwarded_address_is_not_trusted_without_a_proxy(client, clock, settings):
    """With no trusted proxy, changing X-Forwarded-For on each guess changes nothing: the connection counts."""
    settings.TRUSTED_PROXY_COUNT = 0
    UserFactory(email="victim@example.test")
    for n in range(LIMIT):
        sign_in(client, f"someone{n}@example.test", "wrong", ip="203.0.113.7", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    locked_page(sign_in(client, "victim@example.test", PASSWORD, ip="203.0.113.7", HTTP_X_FORWARDED_FOR="10.9.9.9"))


def test_behind_the_proxy_the_address_it_wrote_counts_not_what_the_client_wrote(client, clock, settings):
    """HAProxy appends the address it was reached from: guesses from one client, each with its own made-up
    entry before it, all count against that client; another client behind the same proxy signs in."""
    settings.TRUSTED_PROXY_COUNT = 1
    UserFactory(email="victim@example.test")
    proxy = "10.0.0.2"
    for n in range(LIMIT):
        forwarded = f"192.0.2.{n}, 203.0.113.7"
        sign_in(client, f"someone{n}@example.test", "wrong", ip=proxy, HTTP_X_FORWARDED_FOR=forwarded)
    locked_page(sign_in(client, "victim@example.test", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7"))
    response = sign_in(client, "victim@example.test", PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "198.51.100.1", "203.0.113.7"),
        (1, "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (1, "10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        (2, "10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        (2, "10.0.0.2", "198.51.100.1", "10.0.0.2"),  # fewer entries than proxies: not through them all
        (1, "10.0.0.2", "not-an-address", "10.0.0.2"),
        (1, "10.0.0.2", "2001:DB8::0:1", "2001:db8::1"),
        (0, "", "", None),
    ],
)
def test_client_ip(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
