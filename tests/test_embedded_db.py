"""The embedded PostgreSQL: the URL that hands it to another process, its handle list, and stopping it
when its last user exits, however that user exits."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigora.embedded_db import HANDLES_FILE, database_url, handle_list_repair

ROOT = Path(__file__).resolve().parent.parent

# --- database_url: what a child process is handed --------------------------------------------


def parsed_back(settings: dict) -> tuple:
    parsed = dj_database_url.parse(database_url(settings))
    return parsed["HOST"], str(parsed["PORT"]), parsed["NAME"], parsed["USER"], parsed["PASSWORD"]


def test_the_embedded_servers_socket_directory_is_the_host_of_the_url():
    settings = {"NAME": "test_sigora", "USER": "postgres", "HOST": "/work/Main Checkout/.pgdata", "PORT": ""}
    assert parsed_back(settings) == ("/work/Main Checkout/.pgdata", "", "test_sigora", "postgres", "")


def test_a_tcp_server_keeps_its_host_and_port():
    settings = {"NAME": "sigora_ci", "USER": "postgres", "PASSWORD": "p@ss:/word", "HOST": "127.0.0.1", "PORT": 5432}
    assert database_url(settings) == "postgres://postgres:p%40ss%3A%2Fword@127.0.0.1:5432/sigora_ci"
    assert parsed_back(settings) == ("127.0.0.1", "5432", "sigora_ci", "postgres", "p@ss:/word")


text = st.text(st.characters(exclude_categories=("Cs",)))


@given(
    host=text,
    port=st.one_of(st.just(""), st.integers(1, 65535).map(str)),
    name=text.filter(bool),
    user=text,
    password=text,
)
def test_any_settings_parse_back_from_their_url(host, port, name, user, password):
    settings = {"NAME": name, "USER": user, "PASSWORD": password, "HOST": host, "PORT": port}
    assert parsed_back(settings) == (host, port, name, user, password)


# --- The handle list ------------------------------------------------------------------------


def test_an_unreadable_handle_list_is_started_afresh(tmp_path):
    handles = tmp_path / HANDLES_FILE
    handles.write_text("")  # what a process killed while rewriting it in place left behind
    handle_list_repair(handles)
    assert json.loads(handles.read_text()) == []


def test_dead_processes_are_dropped_and_live_ones_kept(tmp_path):
    handles = tmp_path / HANDLES_FILE
    dead = 2**22 + 12345  # above Linux's pid_max default: never a live process
    zombie = subprocess.Popen([sys.executable, "-c", ""])  # exits at once; not reaped, its pid lives on
    try:
        deadline = time.monotonic() + 30
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert psutil.pid_exists(zombie.pid)
        handles.write_text(json.dumps([os.getpid(), dead, zombie.pid]))
        handle_list_repair(handles)
    finally:
        zombie.wait()
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_a_missing_list_is_left_for_the_server_to_create(tmp_path):
    handle_list_repair(tmp_path / HANDLES_FILE)
    assert not (tmp_path / HANDLES_FILE).exists()


# --- Stopping: the last live user stops the server --------------------------------------------
# Each user is a separate Python process attached the way the settings attach (database_settings),
# which then waits for its stdin to close (a normal exit) or for a signal.

USER = """
import sys
import time
from pathlib import Path
from sigora.embedded_db import database_settings
database_settings(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data directory for these tests: initdb once, then each test starts and stops the server in it."""
    path = tmp_path_factory.mktemp("embedded") / "pgdata"
    yield path
    server_stopped(path)  # a failed test must not leave its server behind


def attach(data_dir: Path) -> subprocess.Popen:
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    user = subprocess.Popen(
        [sys.executable, "-c", USER, str(data_dir)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = user.stdout.readline()  # blocks until attached, or until it died trying
    if line.strip() != "ready":
        user.kill()
        raise AssertionError(f"the user did not attach: {user.communicate(timeout=30)}")
    return user


def server_running(data_dir: Path) -> bool:
    postmaster = data_dir / "postmaster.pid"
    if not postmaster.exists():
        return False
    pid = int(postmaster.read_text().split()[0])
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def server_stopped(data_dir: Path) -> bool:
    """Whether the server was stopped; stop it if not, so one failure does not leak into the next test."""
    if not server_running(data_dir):
        return True
    postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
    postmaster.terminate()
    postmaster.wait(timeout=30)
    (data_dir / HANDLES_FILE).write_text("[]")
    return False


def listed(data_dir: Path) -> list[int]:
    return json.loads((data_dir / HANDLES_FILE).read_text())


def exits(user: subprocess.Popen) -> int:
    user.stdin.close()
    return user.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_last_user_stops_the_server(data_dir, signum):
    user = attach(data_dir)
    assert server_running(data_dir)
    user.send_signal(signum)
    assert user.wait(timeout=60) == -signum  # it still dies by the signal, as its parent expects
    assert server_stopped(data_dir), "the server kept running after its last user was signalled"
    assert listed(data_dir) == []


@pytest.mark.slow
def test_a_signal_to_one_user_leaves_the_server_to_the_others(data_dir):
    first, second = attach(data_dir), attach(data_dir)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    assert server_running(data_dir)
    assert listed(data_dir) == [second.pid]
    assert exits(second) == 0
    assert server_stopped(data_dir)


@pytest.mark.slow
def test_a_user_killed_outright_does_not_keep_the_server_running(data_dir):
    """SIGKILL runs nothing (runserver's reloader kills its child so as it exits): the last live user stops it."""
    killed, last = attach(data_dir), attach(data_dir)
    killed.kill()
    killed.wait(timeout=60)
    assert killed.pid in listed(data_dir)
    assert exits(last) == 0
    assert server_stopped(data_dir), "a dead user's pid kept the server running"
    assert listed(data_dir) == []
