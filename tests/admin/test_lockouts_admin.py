"""Staff see sign-in lockouts in the admin and lift them ("Lift lockout"), with the permissions for each."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse

from tests.admin.conftest import grant, make_person
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # the factory's
LIMIT = settings.AXES_FAILURE_LIMIT
CHANGELIST = reverse("admin:axes_accessattempt_changelist")


def sign_in(client, username, password, *, ip):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def locked_out(client):
    """The victim's account locked by guesses from one address; another address locked by a spray of guesses."""
    UserFactory(email="victim@example.test")
    for n in range(LIMIT):
        sign_in(client, "victim@example.test", f"guess {n}", ip="198.51.100.9")
    for n in range(LIMIT):
        sign_in(client, f"someone{n}@example.test", "Summer2026!", ip="203.0.113.7")
    assert sign_in(client, "victim@example.test", PASSWORD, ip="192.0.2.1").status_code == 429
    client.logout()


@pytest.fixture
def lifting_staff(db):
    return grant(make_person("staff"), "axes.view_accessattempt", "axes.delete_accessattempt")


def lift(client, *rows):
    return client.post(
        CHANGELIST, {"action": "lift_lockout", "_selected_action": [row.pk for row in rows]}, follow=True
    )


def test_staff_see_who_is_locked_out_now(client, locked_out, lifting_staff):
    client.force_login(lifting_staff)
    page = client.get(CHANGELIST, {"locked": "yes"}).content.decode()
    assert "victim@example.test" in page and "198.51.100.9" in page
    assert "someone0@example.test" in page and "203.0.113.7" in page  # locked by its address
    assert "Lift lockout" in page
    # Each spray row has one failure of its own; its address has the limit.
    row = AccessAttempt.objects.get(username="someone0@example.test")
    assert row.failures_since_start == 1
    assert client.get(CHANGELIST, {"locked": "no"}).context["cl"].result_count == 0


def test_lifting_a_lockout_lets_the_person_sign_in(client, locked_out, lifting_staff):
    client.force_login(lifting_staff)
    response = lift(client, AccessAttempt.objects.get(username="victim@example.test"))
    assert "may sign in again" in response.content.decode()
    assert not AccessAttempt.objects.filter(username="victim@example.test").exists()
    client.logout()
    assert sign_in(client, "victim@example.test", PASSWORD, ip="192.0.2.1").status_code == 302


def test_lifting_one_row_lifts_its_address_whichever_accounts_it_guessed(client, locked_out, lifting_staff):
    client.force_login(lifting_staff)
    lift(client, AccessAttempt.objects.get(username="someone3@example.test"))
    assert not AccessAttempt.objects.filter(ip_address="203.0.113.7").exists()
    assert AccessAttempt.objects.filter(username="victim@example.test").exists()  # another lockout, kept
    client.logout()
    UserFactory(email="colleague@example.test")
    assert sign_in(client, "colleague@example.test", PASSWORD, ip="203.0.113.7").status_code == 302


def test_support_staff_without_the_permission_see_but_cannot_lift(client, locked_out):
    viewer = grant(make_person("staff"), "axes.view_accessattempt")
    client.force_login(viewer)
    page = client.get(CHANGELIST).content.decode()
    assert "victim@example.test" in page and "Lift lockout" not in page
    lift(client, AccessAttempt.objects.get(username="victim@example.test"))
    assert AccessAttempt.objects.filter(username="victim@example.test").exists()
    # Nor by deleting rows one by one some other way: no bulk delete is offered to anyone.
    client.force_login(make_person("superuser"))
    assert "delete_selected" not in client.get(CHANGELIST).content.decode()


@pytest.mark.parametrize("role", ["anonymous", "member"])
def test_people_who_are_not_staff_get_the_admins_sign_in(client, locked_out, role):
    person = make_person(role)
    if person is not None:
        client.force_login(person)
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
