"""Create or update Stripe Products and Prices for every plan and pack (idempotent, by lookup key)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from billing.errors import BillingError, StripeUnavailable
from billing.services.stripe_catalog import stripe_catalog_sync


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--wait", type=float, default=0, help="Seconds to keep retrying while Stripe is unreachable (make run)."
        )

    def handle(self, *args, wait: float, **options) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                summary = stripe_catalog_sync()
                break
            except StripeUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(exc.message) from exc
                time.sleep(0.25)  # the double is still starting (make run starts both at once)
            except BillingError as exc:
                raise CommandError(exc.message) from exc
        for line in summary.lines():
            self.stdout.write(line)
        changed = len(summary.created) + len(summary.repriced) + len(summary.renamed)
        self.stdout.write(self.style.SUCCESS(f"Stripe catalog in step: {changed} change(s)."))
