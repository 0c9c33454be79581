"""Celery tasks: thin, idempotent wrappers around services (the schedule is in sigora/celery.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from billing.services.alerts import balance_alerts_send
from billing.services.auto_topup import auto_topups_run
from billing.services.checkout import checkouts_reconcile
from billing.services.resets import periods_reset

logger = logging.getLogger(__name__)


@shared_task(name="billing.reconcile_payments")
def reconcile_payments() -> dict[str, Any]:
    """Fulfil paid Checkout Sessions that no webhook fulfilled (safe to run twice: fulfilment is idempotent)."""
    summary = checkouts_reconcile()
    if summary.fulfilled or summary.errors:
        logger.warning("reconciliation: fulfilled %s, errors %s", summary.fulfilled, summary.errors)
    return {"checked": summary.sessions_seen, "fulfilled": summary.fulfilled, "errors": summary.errors}


@shared_task(name="billing.reset_periods")
def reset_periods() -> dict[str, Any]:
    """Open the next period for every workspace whose period has ended (exactly once per period)."""
    summary = periods_reset()
    return {"workspaces": summary.workspaces, "batches": summary.batches, "fallbacks": summary.fallbacks}


@shared_task(name="billing.send_balance_alerts")
def send_balance_alerts() -> dict[str, Any]:
    """Email owners and admins whose workspace crossed a low-balance threshold (once per period each)."""
    summary = balance_alerts_send()
    return {"sent": summary.sent, "failed": summary.failed}


@shared_task(name="billing.run_auto_topups")
def run_auto_topups() -> dict[str, Any]:
    """Buy the pack of every workspace whose balance fell below its auto top-up threshold."""
    summary = auto_topups_run()
    return {"started": summary.started, "credited": summary.credited, "failed": summary.failed}
