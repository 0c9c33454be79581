"""The project as a whole: settings, the deploy checklist, the embedded database, the Makefile."""

import ast
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
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
            "DATABASE_REPLICA_URL": "postgres://reader@127.0.0.1:5433/sigora",
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


def test_a_replica_url_adds_a_replica_alias_connected_as_the_primary_is():
    shown = "HOST", "PORT", "NAME", "USER", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS"
    code = (
        "import json; from django.conf import settings as s; r = s.DATABASES['replica'];"
        f"print(json.dumps({{k: r[k] for k in {shown!r}}} | {{'alias': s.REPLICA_DATABASE}}))"
    )
    replica_url = "postgres://reader@replica.internal:5433/sigora?sslmode=require"
    environment = {"DJANGO_SETTINGS_MODULE": "sigora.settings.dev", "DB_CONN_MAX_AGE": "30"}
    result = manage("shell", "-c", code, env_overrides={**environment, "DATABASE_REPLICA_URL": replica_url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "HOST": "replica.internal",
        "PORT": 5433,
        "NAME": "sigora",
        "USER": "reader",
        # Persistent, and checked at each request's first use: it reconnects after a restart.
        "CONN_MAX_AGE": 30,
        "CONN_HEALTH_CHECKS": True,
        # The URL's own options, and the primary's statement preparation and connect timeout.
        "OPTIONS": {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 5, "connect_timeout": 5},
        "alias": "replica",
    }
    refused = manage("check", env_overrides={**environment, "DATABASE_REPLICA_URL": "mysql://reader@x.internal/sigora"})
    assert refused.returncode != 0
    assert "DATABASE_REPLICA_URL must be a postgres:// URL" in refused.stderr


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


# --- The Makefile, as a newcomer runs it ---------------------------------------------------------

# Whatever the suite's own run hands down that a newcomer's shell would not have: a database and Redis,
# the test settings, a Stripe key, and the outer make's flags (`make test` runs this suite).
NOT_A_NEWCOMERS = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"}
NOT_A_NEWCOMERS |= {"DEBUG", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTEST_ARGS"}


def newcomers_env(**extra: str) -> dict[str, str]:
    return {**{name: value for name, value in os.environ.items() if name not in NOT_A_NEWCOMERS}, **extra}


def benchmark_files() -> set[str]:
    """The bench/ modules that run as a script (a ``__main__`` block); the rest are what they import or serve."""
    found = set()
    for path in (ROOT / "bench").glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(
            isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", "'__main__' == __name__")
            for node in tree.body
        ):
            found.add(f"bench/{path.name}")
    return found


def test_make_bench_runs_every_benchmark_and_nothing_else():
    """What the bench recipe runs (make's dry run prints it, its list expanded) is exactly the benchmarks."""
    assert benchmark_files() >= {"bench/charge.py", "bench/api.py"}  # the rule finds them at all
    result = subprocess.run(
        ["make", "--dry-run", "bench"], cwd=ROOT, env=newcomers_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert set(re.findall(r"bench/\w+\.py", result.stdout)) == benchmark_files(), result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postmaster(data_dir: Path) -> psutil.Process | None:
    """The embedded server's postmaster for ``data_dir``, if one runs."""
    pid_file = data_dir / "postmaster.pid"
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess):  # none, or being written
        return None
    return process if running(process) and str(data_dir) in process.cmdline() else None


def in_session(session: int) -> list[psutil.Process]:
    left = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and running(process):
                left.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return left


def make_run_until_answering(data_dir: Path, log: Path) -> tuple[subprocess.Popen, int, int]:
    """``make run`` as a newcomer starts it (no DATABASE_URL: the embedded server), in a session of its own
    like a terminal's job; returned once the demo's sign-in page answers."""
    port, double_port = free_port(), free_port()
    with log.open("w") as output:
        run = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"STRIPE_DOUBLE_PORT={double_port}"],
            cwd=ROOT,
            env=newcomers_env(EMBEDDED_PG_DIR=str(data_dir)),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as answer:
                if answer.status == 200:
                    return run, port, double_port
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    raise AssertionError(f"make run did not answer:\n{log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_make_run_stops_all_it_started_and_it_starts_again(tmp_path, signum):
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM to the group: when make exits, nothing it
    started runs (the embedded PostgreSQL, runserver and its reloader, the Stripe double), no process is
    listed as using the server and nothing listens on either port; a second run right after, on the same data
    directory, starts and stops as cleanly."""
    data_dir = tmp_path / "pgdata"
    for attempt in ("first", "second"):
        log = tmp_path / f"{attempt}.log"
        run, port, double_port = make_run_until_answering(data_dir, log)
        try:
            server = postmaster(data_dir)
            assert server is not None, f"{attempt} run: no embedded server in {data_dir}"
            started = [*psutil.Process(run.pid).children(recursive=True), server]
            assert listening(double_port), f"{attempt} run: the Stripe double is not listening"
            os.killpg(run.pid, signum)
            run.wait(timeout=90)
            left = [process for process in started if running(process)] + in_session(run.pid)
            assert not left, f"{attempt} run: still running after make exited: {left}\n{log.read_text()}"
            assert postmaster(data_dir) is None
            assert json.loads((data_dir / ".handle_pids.json").read_text()) == [], log.read_text()
            assert not listening(port) and not listening(double_port)
        finally:
            leftovers = in_session(run.pid) + [p for p in [postmaster(data_dir)] if p]
            for process in leftovers:  # a failed run must not leave its servers behind
                process.kill()


TEST_TOOLS = {"pytest", "pytest-django", "playwright", "schemathesis", "hypothesis", "ruff", "factory-boy", "faker",
              "time-machine"}  # fmt: skip


def _pinned(path: Path) -> dict[str, str]:
    """A lock file's packages (normalised names) and versions; ``-r`` includes are followed."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("-r "):
            pins |= _pinned(path.parent / line[3:].strip())
        elif line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned to an exact version"
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_the_runtime_install_has_no_test_tools_and_the_dev_install_adds_them():
    runtime, dev = _pinned(ROOT / "requirements.txt"), _pinned(ROOT / "requirements-dev.txt")
    assert not TEST_TOOLS & set(runtime)
    assert set(dev) >= TEST_TOOLS
    assert runtime.items() <= dev.items()  # the tests run on the very versions production runs
    make = (ROOT / "Makefile").read_text()
    assert "install: $(RUNTIME_STAMP)" in make and "run: seed" in make and "migrate: install\n" in make
    assert "test: install-dev lint" in make


def test_every_transactional_test_restores_the_database_it_flushed():
    """A ``transaction=True`` test flushes the tables afterwards, and Django's flush re-creates the content types
    and permissions; the next test with ``serialized_rollback`` then restores its copy over them and fails on
    their unique keys. So every transactional test here restores what it flushed (``serialized_rollback``)."""
    tests = Path(__file__).resolve().parent
    unrestored = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("django_db"):
                given = {keyword.arg: ast.unparse(keyword.value) for keyword in node.keywords}
                if given.get("transaction") == "True" and given.get("serialized_rollback") != "True":
                    unrestored.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert unrestored == []
