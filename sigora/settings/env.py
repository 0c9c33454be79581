"""Read configuration from the environment, with clear errors for bad values."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off (got {raw!r})")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer (got {raw!r})") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_required(name: str, why: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"{name} must be set: {why}")
    return value


def env_database_timeouts(*, statement: int, lock: int, idle_in_transaction: int) -> dict[str, int]:
    """PostgreSQL's bounds on each statement, lock wait and idle open transaction, in milliseconds (0: none).

    From ``DB_STATEMENT_TIMEOUT_MS``, ``DB_LOCK_TIMEOUT_MS`` and ``DB_IDLE_IN_TRANSACTION_TIMEOUT_MS``,
    with the defaults given; keyed by the PostgreSQL setting each one sets (billing/db.py).
    """
    timeouts = {
        "statement_timeout": env_int("DB_STATEMENT_TIMEOUT_MS", statement),
        "lock_timeout": env_int("DB_LOCK_TIMEOUT_MS", lock),
        "idle_in_transaction_session_timeout": env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", idle_in_transaction),
    }
    for name, value in timeouts.items():
        if value < 0:
            raise ImproperlyConfigured(f"{name} must be 0 (none) or a number of milliseconds (got {value})")
    return timeouts
