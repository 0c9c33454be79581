"""Passwords are hashed with Argon2; a PBKDF2 hash from before still signs in, and is upgraded as it does.

The test settings hash with MD5 for speed: these tests put back production's list (sigora/settings/base.py).
"""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.urls import reverse

from billing.management.commands.seed_demo import DEMO_OWNER, DEMO_STAFF

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase for hashing"


@pytest.fixture
def production_hashers(settings):
    settings.PASSWORD_HASHERS = importlib.import_module("sigora.settings.base").PASSWORD_HASHERS


def test_the_production_settings_hash_with_argon2_first_and_keep_pbkdf2(production_hashers, settings):
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in settings.PASSWORD_HASHERS
    assert make_password(PASSWORD).startswith("argon2$argon2id$")


def test_a_pbkdf2_hash_signs_in_and_is_then_argon2(client, production_hashers):
    user = get_user_model().objects.create(username="old@example.test", email="old@example.test")
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    assert user.password.startswith("pbkdf2_sha256$")

    response = client.post(reverse("login"), {"username": "old@example.test", "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password(PASSWORD)


def test_a_wrong_password_leaves_the_old_hash_alone(client, production_hashers):
    user = get_user_model().objects.create(username="old@example.test", email="old@example.test")
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    client.post(reverse("login"), {"username": "old@example.test", "password": "not it"})
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_sha256$")


def test_the_demo_logins_sign_in_through_the_forms_with_argon2(client, production_hashers):
    """`make run`'s logins (README): the owner's, and staff's on the way to the admin (then the code step)."""
    call_command("seed_demo", "--force", stdout=StringIO(), stderr=StringIO())
    owner = client.post(reverse("login"), {"username": DEMO_OWNER[0], "password": DEMO_OWNER[1]})
    assert owner.status_code == 302 and owner["Location"] == reverse("billing:settings_billing")
    client.logout()
    staff = client.post(f"{reverse('login')}?next=/admin/", {"username": DEMO_STAFF[0], "password": DEMO_STAFF[1]})
    assert staff.status_code == 302 and staff["Location"] == "/admin/"
    hashes = (
        get_user_model().objects.filter(username__in=[DEMO_OWNER[0], DEMO_STAFF[0]]).values_list("password", flat=True)
    )
    assert [h.split("$")[0] for h in hashes] == ["argon2", "argon2"]
