"""The project as a whole: settings, the deploy checklist, the embedded database, the pages."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, env_overrides, unset=()):
    env = {**os.environ, **env_overrides}
    for name in unset:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_checklist():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env_overrides={
            "DJANGO_SETTINGS_MODULE": "sigora.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "billing.example.com",
            "BYOK_ENCRYPTION_KEYS": "tqTQXcPXdcgL6t6lFkG1n6FNOAeFl0GPyfP3O8r4gQk=",
            "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage(
        "check",
        env_overrides={"DJANGO_SETTINGS_MODULE": "sigora.settings.production", "ALLOWED_HOSTS": "x.example.com"},
        unset=["SECRET_KEY"],
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_only_postgresql_is_accepted():
    result = manage("check", env_overrides={"DATABASE_URL": "sqlite:///db.sqlite3"})
    assert result.returncode != 0
    assert "PostgreSQL is the only database" in result.stderr


@pytest.mark.slow
def test_without_database_url_an_embedded_postgresql_starts(tmp_path):
    """A newcomer's machine: no DATABASE_URL, so the project runs its own PostgreSQL."""
    result = manage(
        "shell",
        "-c",
        "from django.db import connection; connection.ensure_connection(); "
        "print(connection.vendor, connection.pg_version // 10000, connection.settings_dict['NAME'])",
        env_overrides={"EMBEDDED_PG_DIR": str(tmp_path / "pgdata")},
        unset=["DATABASE_URL"],
    )
    assert result.returncode == 0, result.stderr
    vendor, major, name = result.stdout.split()[-3:]
    assert (vendor, name) == ("postgresql", "sigora")
    assert int(major) >= 15
