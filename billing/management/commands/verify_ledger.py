"""Check that every wallet equals the sum of its ledger and nothing is negative."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import Workspace
from billing.selectors import holds_audit, ledger_audit


class Command(BaseCommand):
    help = "Verify every workspace's wallet against its ledger entries; exits non-zero naming each failure."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", type=int, action="append", dest="workspaces", help="Only this workspace id.")
        parser.add_argument("--chunk-size", type=int, default=5_000, help="Workspaces checked per query.")

    def handle(self, *args, workspaces=None, chunk_size=5_000, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        total = len(workspaces) if workspaces else Workspace.objects.count()
        checked = entries = 0
        problems = []
        for chunk in ledger_audit(chunk_size=chunk_size, workspace_ids=workspaces):
            checked += chunk.checked
            entries += chunk.entries
            problems.extend(chunk.problems)
            if total > chunk_size:
                self.stderr.write(f"  checked {checked:,} / {total:,} workspaces ({entries:,} entries)")
        problems.extend(holds_audit(now=timezone.now(), workspace_ids=workspaces))
        for problem in problems:
            self.stdout.write(
                self.style.ERROR(f"workspace {problem.workspace_id} ({problem.workspace_name}): {problem.problem}")
            )
        failed = len({problem.workspace_id for problem in problems})
        summary = f"{checked:,} workspaces, {entries:,} ledger entries checked: "
        if failed:
            raise CommandError(summary + f"{failed:,} workspace(s) FAILED")
        self.stdout.write(self.style.SUCCESS(summary + "all balanced"))
