"""Fulfil any paid Checkout Session that no webhook fulfilled (also run periodically)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.errors import BillingError
from billing.services.checkout import checkouts_reconcile


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--hours", type=int, default=48, help="How far back to look (default 48).")

    def handle(self, *args, hours: int, **options) -> None:
        if hours < 1:
            raise CommandError("--hours must be at least 1.")
        try:
            summary = checkouts_reconcile(since=timezone.now() - timedelta(hours=hours))
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        for session_id in summary.fulfilled:
            self.stdout.write(f"fulfilled {session_id}")
        for error in summary.errors:
            self.stderr.write(f"error {error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.sessions_seen} completed session(s) checked, {len(summary.fulfilled)} fulfilled, "
                f"{len(summary.errors)} error(s)."
            )
        )
        if summary.errors:
            raise CommandError(f"{len(summary.errors)} session(s) could not be fulfilled.")
