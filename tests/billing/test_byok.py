import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from billing import crypto
from billing.models import Workspace
from billing.services import InvalidRequest, byok_remove, byok_set

pytestmark = pytest.mark.django_db

KEY = "sk-ant-api03-" + "A1b2_C3-" * 6


def test_the_key_is_stored_encrypted_and_only_a_hint_stays_readable(workspace):
    byok_set(workspace=workspace, api_key=f"  {KEY}\n")
    stored = Workspace.objects.get(pk=workspace.pk)
    assert stored.has_byok
    assert KEY not in stored.byok_key_encrypted
    assert stored.byok_key_hint == f"sk-ant-…{KEY[-4:]}"
    assert crypto.decrypt(stored.byok_key_encrypted) == KEY
    byok_remove(workspace=stored)
    stored.refresh_from_db()
    assert (stored.has_byok, stored.byok_key_hint, stored.byok_set_at) == (False, "", None)


@pytest.mark.parametrize("bad", ["", "sk-live-123", "sk-ant-short", "sk-ant-" + "x" * 30 + " y"])
def test_a_malformed_key_is_refused_and_nothing_is_stored(workspace, bad):
    with pytest.raises(InvalidRequest) as refusal:
        byok_set(workspace=workspace, api_key=bad)
    assert refusal.value.field == "api_key"
    assert not Workspace.objects.get(pk=workspace.pk).has_byok


def test_keys_rotate_without_losing_what_is_stored():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(BYOK_ENCRYPTION_KEYS=[old]):
        token = crypto.encrypt(KEY)
    with override_settings(BYOK_ENCRYPTION_KEYS=[new, old]):
        assert crypto.decrypt(token) == KEY
        rotated = crypto.reencrypt(token)
    with override_settings(BYOK_ENCRYPTION_KEYS=[new]):
        assert crypto.decrypt(rotated) == KEY


def test_rotation_rewrites_stored_keys_so_the_old_key_can_be_dropped(workspace):
    from io import StringIO

    from django.core.management import call_command

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(BYOK_ENCRYPTION_KEYS=[old]):
        byok_set(workspace=workspace, api_key=KEY)
    with override_settings(BYOK_ENCRYPTION_KEYS=[new, old]):
        out = StringIO()
        call_command("byok_reencrypt", stdout=out)
        assert "1 stored key(s) re-encrypted" in out.getvalue()
    with override_settings(BYOK_ENCRYPTION_KEYS=[new]):
        assert crypto.decrypt(Workspace.objects.get(pk=workspace.pk).byok_key_encrypted) == KEY
