"""Re-encrypt stored BYOK keys under the first key of BYOK_ENCRYPTION_KEYS (key rotation)."""

from django.core.management.base import BaseCommand

from billing.services.byok import byok_reencrypt_all


class Command(BaseCommand):
    help = (
        "Rotate the BYOK encryption key: put the new key first in BYOK_ENCRYPTION_KEYS, keep the old ones, "
        "run this, then drop the old keys."
    )

    def handle(self, *args, **options):
        count = byok_reencrypt_all()
        self.stdout.write(self.style.SUCCESS(f"{count:,} stored key(s) re-encrypted under the newest key."))
