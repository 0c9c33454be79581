"""``make faults``, bounded: every fault injected once under load, then no credit lost or counted twice.

``python -m stack.faults --bounded`` starts a stack of its own on free ports (``.stack/faults-check/``),
runs 16 client processes charging through the balancer with retries, webhook storms from the offline
Stripe double, and one of each fault: ``kill -9`` of an app node, a PgBouncer restart, a PostgreSQL
restart, a Redis restart, and ``kill -9`` of the Celery worker running a reset pass over 10,000 due
workspaces; it checks the ledger against every answer the clients got and exits 1 on any failure
(stack/faults.py). About two minutes, the stack's start included. Marked slow like the stack's check,
and like it needs Debian's pgbouncer and haproxy (REQUIRE_STACK_TESTS=1 in CI: missing fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stack.config import config_from
from stack.faults import fault_environment
from tests.stack.test_stack import tools_or_skip

ROOT = Path(__file__).resolve().parent.parent.parent
STACK_DIR = ROOT / ".stack" / "faults-check"
TIMEOUT = 600.0  # seconds: the bounded run takes about two; a hung part must not hang CI

pytestmark = pytest.mark.slow


def test_under_load_and_every_fault_no_charge_is_lost_or_counted_twice_and_every_reset_and_webhook_once():
    tools_or_skip(config_from(fault_environment(STACK_DIR)))
    run = subprocess.run(
        [sys.executable, "-m", "stack.faults", "--bounded", "--stack-dir", str(STACK_DIR)],
        cwd=ROOT,
        env={name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    try:
        said = run.stdout + run.stderr
        figures = said[said.find("== faults: figures") :]
        print(figures)
        assert run.returncode == 0, said[-6000:]
        assert "lost 0, duplicated 0" in figures
        assert figures.count("back in") == 5, figures  # each fault injected, each part started again
    finally:
        shutil.rmtree(STACK_DIR, ignore_errors=True)
