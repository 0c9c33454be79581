"""Run one pass of the period resets by hand: every workspace whose period has ended, with progress."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.credits import format_credits
from billing.services.resets import ResetSummary, periods_reset


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=1_000, help="Workspaces per transaction.")
        parser.add_argument("--workspace", type=int, action="append", help="Only this workspace (repeatable).")

    def handle(self, *args, batch_size: int, workspace: list[int] | None, **options) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        def progress(summary: ResetSummary) -> None:
            self.stdout.write(f"  batch {summary.batches}: {summary.workspaces:,} workspace(s) reset so far")

        summary = periods_reset(batch_size=batch_size, workspace_ids=workspace, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.workspaces:,} workspace(s) reset in {summary.batches} batch(es): "
                f"{format_credits(summary.expired_credits)} unused credits expired, "
                f"{format_credits(summary.granted_credits)} granted; "
                f"{len(summary.fallbacks)} unpaid renewal(s) fell back to Free."
            )
        )
