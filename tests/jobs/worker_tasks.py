"""A task only the test worker loads (``--include``): a reset pass that dies after its first batch, once."""

from __future__ import annotations

import os
from pathlib import Path

from celery import shared_task

from billing.services.resets import ResetSummary, periods_reset


@shared_task(name="tests.reset_then_die", acks_late=True, reject_on_worker_lost=True)
def reset_then_die(flag: str, batch_size: int) -> int:
    first_delivery = not Path(flag).exists()

    def progress(summary: ResetSummary) -> None:
        if first_delivery and summary.batches == 1:
            Path(flag).write_text("killed after one batch")
            os._exit(9)  # as a kill -9 would: no ack, no cleanup, the rest of the pass undone

    return periods_reset(batch_size=batch_size, progress=progress).workspaces
