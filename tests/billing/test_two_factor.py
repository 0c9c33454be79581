"""Two-factor sign-in through the real pages: enrolment, a code after the password, backup codes, the settings page.

Django's plain test client throughout (not the project's VerifiedClient): the password goes
through the sign-in form and every code through the code page. Codes are computed from the
device's secret with django-otp's own TOTP; the clock is moved with time-machine.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.services import two_factor_enrol_begin, two_factor_enrol_confirm
from billing.services.two_factor import backup_code_stored
from tests.factories import UserFactory, WorkspaceFactory

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's
VERIFY = "/accounts/two-factor/"
ENROL = "/accounts/two-factor/enrol/"
START = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def sign_in(client: Client, user, next_url: str = "") -> object:
    """The password step, as the sign-in form posts it."""
    data = {"username": user.username, "password": PASSWORD, "next": next_url}
    return client.post(reverse("login"), data)


def enrolled(user) -> tuple[TOTPDevice, list[str]]:
    """``user`` with a confirmed authenticator app and backup codes, set up as the enrolment page does."""
    device = two_factor_enrol_begin(user=user)
    done = two_factor_enrol_confirm(user=user, code=code_for(device))
    device.refresh_from_db()
    return device, done.backup_codes


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@example.test", is_staff=True, is_superuser=True)


def test_staff_enrol_at_their_first_sign_in_and_nothing_else_opens_until_then(db, clock, staff):
    client = Client()
    response = sign_in(client, staff, next_url="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    # Every admin page (and every other page) sends the session to enrol.
    for url in ["/admin/", "/admin/billing/workspace/", "/settings/billing/", "/admin/auth/user/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(ENROL), url

    page = client.get(f"{ENROL}?next=/admin/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'src="data:image/svg+xml;base64,' in html  # the QR code, drawn here
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', html).group(1)
    device = TOTPDevice.objects.get(user=staff)
    assert base64.b32decode(secret.replace(" ", "")) == device.bin_key and not device.confirmed
    assert client.get(ENROL).content.decode().count(secret) == 1  # the same secret when shown again

    wrong = client.post(ENROL, {"code": "000000", "action": "enrol", "next": "/admin/"})
    assert wrong.status_code == 422 and "not right" in wrong.content.decode()
    assert not TOTPDevice.objects.get(user=staff).confirmed
    assert client.get("/admin/")["Location"].startswith(ENROL)

    clock.shift(timedelta(seconds=2))  # past the wrong code's one-second lock
    key_before = client.session.session_key
    done = client.post(ENROL, {"code": code_for(device), "action": "enrol", "next": "/admin/"})
    html = done.content.decode()
    assert done.status_code == 200 and "Two-factor sign-in is on" in html
    codes = re.findall(r"<li><code>([a-z2-7 ]+)</code></li>", html)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = set(StaticToken.objects.filter(device__user=staff).values_list("token", flat=True))
    assert len(stored) == 10
    # Kept as digests: none of the codes shown is readable in the database.
    assert not stored & {code.replace(" ", "") for code in codes}
    assert stored == {backup_code_stored(code.replace(" ", "")) for code in codes}
    assert TOTPDevice.objects.get(user=staff).confirmed
    assert client.session.session_key != key_before  # a new session key once the second factor passed
    assert client.get("/admin/").status_code == 200
    assert "backup" not in client.get("/admin/").content.decode().lower()  # shown once, on that page only


def test_sign_in_asks_for_a_code_and_a_right_one_opens_the_admin(db, clock, staff):
    device, _ = enrolled(staff)
    clock.shift(timedelta(seconds=30))  # the set-up's code is spent; the next time step's is new
    client = Client()
    sign_in(client, staff, next_url="/admin/billing/workspace/")
    response = client.get("/admin/billing/workspace/")
    assert response.status_code == 302
    assert response["Location"] == f"{VERIFY}?next=%2Fadmin%2Fbilling%2Fworkspace%2F"
    page = client.get(response["Location"])
    assert page.status_code == 200 and "authenticator app" in page.content.decode()
    key_before = client.session.session_key

    done = client.post(VERIFY, {"code": code_for(device), "next": "/admin/billing/workspace/"})
    assert done.status_code == 302 and done["Location"] == "/admin/billing/workspace/"
    assert client.session.session_key != key_before
    assert client.get("/admin/billing/workspace/").status_code == 200


def test_a_wrong_code_is_refused_verifies_nothing_and_locks_the_device_a_while(db, clock, staff):
    device, _ = enrolled(staff)
    clock.shift(timedelta(seconds=30))
    client = Client()
    sign_in(client, staff)
    wrong = client.post(VERIFY, {"code": "123456", "next": "/admin/"})
    assert wrong.status_code == 422 and "That code is not right" in wrong.content.decode()
    assert client.get("/admin/")["Location"].startswith(VERIFY)
    # Even the right code is refused straight after a wrong one: guesses cannot come at speed.
    locked = client.post(VERIFY, {"code": code_for(device), "next": "/admin/"})
    assert locked.status_code == 422 and "Too many wrong codes: wait 1 second" in locked.content.decode()
    assert client.get("/admin/")["Location"].startswith(VERIFY)
    clock.shift(timedelta(seconds=2))
    assert client.post(VERIFY, {"code": code_for(device), "next": "/admin/"}).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_each_app_code_works_once(db, clock, staff):
    device, _ = enrolled(staff)
    clock.shift(timedelta(seconds=30))
    code = code_for(device)
    first = Client()
    sign_in(first, staff)
    assert first.post(VERIFY, {"code": code}).status_code == 302
    second = Client()  # someone who saw that code typed, within its 30 seconds
    sign_in(second, staff)
    assert second.post(VERIFY, {"code": code}).status_code == 422
    assert second.get("/admin/")["Location"].startswith(VERIFY)


def test_a_backup_code_signs_in_once(db, clock, staff):
    _, codes = enrolled(staff)
    backup = codes[3]
    client = Client()
    sign_in(client, staff)
    typed = backup[:4] + "-" + backup[4:8].upper() + " " + backup[8:]  # as people copy it
    response = client.post(VERIFY, {"code": typed, "next": "/admin/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/admin/" and response.status_code == 200
    assert "You signed in with a backup code: 9 left" in response.content.decode()
    assert not StaticToken.objects.filter(token=backup_code_stored(backup)).exists()
    assert StaticToken.objects.filter(device__user=staff).count() == 9

    client.post(reverse("logout"))
    clock.shift(timedelta(seconds=60))
    again = Client()
    sign_in(again, staff)
    assert again.post(VERIFY, {"code": backup}).status_code == 422
    assert again.get("/admin/")["Location"].startswith(VERIFY)


def test_the_password_alone_cannot_replace_a_staff_users_device(db, clock, staff):
    enrolled(staff)
    client = Client()
    sign_in(client, staff)
    response = client.get(ENROL)
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert client.post(ENROL, {"code": "123456", "action": "enrol"}).status_code == 302
    assert TOTPDevice.objects.filter(user=staff).count() == 1  # no second, unconfirmed one made either


def test_members_without_two_factor_sign_in_with_the_password_alone(db, clock):
    owner = UserFactory(email="plain@example.test")
    WorkspaceFactory(name="Plain Co", owner=owner)
    client = Client()
    sign_in(client, owner)
    assert client.get("/settings/billing/").status_code == 200


@pytest.fixture
def owner(db):
    user = UserFactory(email="owner@example.test")
    WorkspaceFactory(name="Careful Co", owner=user)
    return user


def test_an_owner_turns_two_factor_on_and_the_next_sign_in_asks_for_it(db, clock, owner):
    client = Client()
    sign_in(client, owner)
    page = client.get("/settings/two-factor/")
    assert page.status_code == 200 and "Off: your password alone signs you in" in page.content.decode()
    setup = client.get("/settings/two-factor/", {"setup": "1"})
    assert 'data-testid="totp-secret"' in setup.content.decode()
    device = TOTPDevice.objects.get(user=owner)
    done = client.post("/settings/two-factor/", {"action": "enrol", "code": code_for(device)})
    assert done.status_code == 200 and len(re.findall(r"<li><code>", done.content.decode())) == 10
    assert "On, since" in client.get("/settings/two-factor/").content.decode()
    client.post(reverse("logout"))

    clock.shift(timedelta(seconds=30))
    client = Client()
    assert sign_in(client, owner)["Location"] == reverse("billing:settings_billing")
    response = client.get("/settings/billing/")
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    # An htmx region asks the browser to go to the code page, rather than showing it inside the region.
    fragment = client.get("/settings/billing/balance/", headers={"HX-Request": "true"})
    assert fragment["HX-Redirect"] == VERIFY
    assert client.post(VERIFY, {"code": code_for(device), "next": "/settings/billing/"}).status_code == 302
    assert client.get("/settings/billing/").status_code == 200


def test_turning_two_factor_off_needs_a_code(db, clock, owner):
    device, _ = enrolled(owner)
    clock.shift(timedelta(seconds=30))
    client = Client()
    sign_in(client, owner)
    client.post(VERIFY, {"code": code_for(device)})
    clock.shift(timedelta(seconds=30))
    refused = client.post("/settings/two-factor/", {"action": "disable", "code": "000000"})
    assert refused.status_code == 422 and TOTPDevice.objects.filter(user=owner).exists()
    clock.shift(timedelta(seconds=2))
    off = client.post("/settings/two-factor/", {"action": "disable", "code": code_for(device)})
    assert off.status_code == 302
    assert not TOTPDevice.objects.filter(user=owner).exists() and not StaticDevice.objects.filter(user=owner).exists()
    client.post(reverse("logout"))
    client = Client()
    sign_in(client, owner)
    assert client.get("/settings/billing/").status_code == 200  # the password alone, again


def test_a_member_cannot_turn_two_factor_on(db, clock, owner):
    member = UserFactory(email="member@example.test")
    owner.memberships.get().workspace.memberships.create(user=member, role="member")
    client = Client()
    sign_in(client, member)
    page = client.get("/settings/two-factor/", {"setup": "1"})
    assert "Owners and admins of a workspace can turn on two-factor sign-in" in page.content.decode()
    client.post("/settings/two-factor/", {"action": "enrol", "code": "123456"})
    assert not TOTPDevice.objects.filter(user=member).exists()


def test_a_lost_device_is_removed_by_command_and_the_next_sign_in_enrols_again(db, clock, staff):
    enrolled(staff)
    out = StringIO()
    call_command("two_factor_reset", staff.username, stdout=out)
    assert "Removed 2 device(s)" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=staff).exists() and not StaticDevice.objects.filter(user=staff).exists()
    client = Client()
    sign_in(client, staff)
    assert client.get("/admin/")["Location"].startswith(ENROL)


def test_a_digest_read_from_the_database_is_not_a_backup_code(db, clock, staff):
    """What a copy of the database holds does not sign anyone in."""
    enrolled(staff)
    stolen = StaticToken.objects.filter(device__user=staff).values_list("token", flat=True).first()
    client = Client()
    sign_in(client, staff)
    assert client.post(VERIFY, {"code": stolen}).status_code == 422
    assert client.get("/admin/")["Location"].startswith(VERIFY)
    assert StaticToken.objects.filter(device__user=staff).count() == 10  # nothing was spent
