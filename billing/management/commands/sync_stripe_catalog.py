"""Create or update Stripe Products and Prices for every plan and pack (idempotent, by lookup key)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.errors import BillingError
from billing.services.stripe_catalog import stripe_catalog_sync


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options) -> None:
        try:
            summary = stripe_catalog_sync()
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        for line in summary.lines():
            self.stdout.write(line)
        changed = len(summary.created) + len(summary.repriced) + len(summary.renamed)
        self.stdout.write(self.style.SUCCESS(f"Stripe catalog in step: {changed} change(s)."))
