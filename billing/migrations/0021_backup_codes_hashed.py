"""Backup codes kept as a digest (billing/services/two_factor.py, backup_code_stored): the ones stored readable
before this migration are digested in place. Not reversible: a digest cannot be read back."""

import hashlib
from base64 import b32encode

from django.db import migrations


def stored(code: str) -> str:
    # billing.services.two_factor.backup_code_stored as of this migration, frozen here.
    return b32encode(hashlib.sha256(code.encode()).digest()[:10]).decode().lower()


def digest_backup_codes(apps, schema_editor):
    StaticToken = apps.get_model("otp_static", "StaticToken")
    tokens = list(StaticToken.objects.only("id", "token"))
    for token in tokens:
        token.token = stored(token.token)
    StaticToken.objects.bulk_update(tokens, ["token"], batch_size=1_000)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0020_email_verification"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(digest_backup_codes, migrations.RunPython.noop, elidable=False)]
