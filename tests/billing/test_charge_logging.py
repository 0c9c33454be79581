"""What the billing log says about charges at the production level (INFO): refusals, not each charge.

The ledger entry is the record of a successful charge; a log line per charge cost the hot path
about 30 % of its rate, so successful charges and replays are logged at DEBUG.
"""

import logging
from logging.handlers import BufferingHandler

import pytest

from billing.services import InsufficientCredits, charge, charge_batch
from tests.conftest import fund

pytestmark = pytest.mark.django_db

HAIKU = {"action": "claude-haiku", "quantity": 7}  # 0.7 credits


@pytest.fixture
def billing_log():
    """The ``billing`` logger's records, at the level a test sets (it does not propagate to caplog's root)."""
    logger = logging.getLogger("billing")
    handler = BufferingHandler(capacity=10_000)
    level = logger.level
    logger.addHandler(handler)

    def at(new_level: int) -> list[logging.LogRecord]:
        logger.setLevel(new_level)
        return handler.buffer

    yield at
    logger.removeHandler(handler)
    logger.setLevel(level)


def charging_lines(records: list[logging.LogRecord]) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in records if r.name == "billing.services.charging"]


def test_at_info_a_charge_a_replay_and_a_batch_log_nothing_and_a_refusal_logs_one_line(workspace, billing_log):
    fund(workspace, plan=0, topup=100)
    records = billing_log(logging.INFO)
    charge(workspace=workspace, **HAIKU, idempotency_key="sent-1")
    charge(workspace=workspace, **HAIKU, idempotency_key="sent-1")  # a replay
    charge_batch(workspace=workspace, events=[{**HAIKU, "idempotency_key": f"b-{n}"} for n in (1, 2)])
    assert charging_lines(records) == []

    with pytest.raises(InsufficientCredits):
        charge(workspace=workspace, action="claude-opus", quantity=100_000, idempotency_key="too-big")

    [(level, line)] = charging_lines(records)
    assert level == logging.INFO
    assert line.startswith(f"charge refused workspace={workspace.pk} code=insufficient_credits")
    assert "too-big" in line


def test_at_debug_each_charge_replay_and_batch_is_logged_with_its_key(workspace, billing_log):
    fund(workspace, plan=0, topup=100)
    records = billing_log(logging.DEBUG)
    entry = charge(workspace=workspace, **HAIKU, idempotency_key="sent-1")
    charge(workspace=workspace, **HAIKU, idempotency_key="sent-1")
    charge_batch(workspace=workspace, events=[{**HAIKU, "idempotency_key": f"b-{n}"} for n in (1, 2)])

    lines = charging_lines(records)
    assert [level for level, _ in lines] == [logging.DEBUG] * 3
    first, replay, batch = (line for _, line in lines)
    assert first.startswith(f"charge workspace={workspace.pk} action=claude-haiku key=sent-1 ")
    assert first.endswith(f"entry={entry.pk}")
    assert replay.endswith(f"entry={entry.pk} (replay)")
    assert batch.startswith(f"charge batch workspace={workspace.pk} events=2 ") and batch.endswith("keys=b-1..b-2")
