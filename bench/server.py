"""The app under gunicorn on a free loopback port: for bench/api.py and the API load test.

Only ever 127.0.0.1. The server is a child process started with the environment given
(``DATABASE_URL`` of the database to serve, settings module, tuning), stopped with SIGTERM
when the block ends, and its output kept so a failure to start says why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sigora.embedded_db import database_url  # noqa: F401  (the URL to hand gunicorn: api.py and tests/api/test_load.py)

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds for the master to import the app and listen


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); gunicorn binds it a moment later."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn_serve(
    *,
    env: Mapping[str, str],
    workers: int,
    threads: int,
    settings_module: str,
    keep_alive: int = 75,
    app: str = "sigora.wsgi:application",
) -> Iterator[Server]:
    """Serve ``app`` (the product's WSGI application unless told otherwise) on 127.0.0.1 until the block ends.

    ``--preload``: the master imports the app once and then listens, so "Listening at" in its
    log means every request from then on is answered (the workers fork from it). Threads mean
    the gthread worker, which keeps client connections alive between requests.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--worker-class=gthread",
        f"--keep-alive={keep_alive}",
        "--preload",
        "--log-level=info",  # "Listening at" is an info line
        "--graceful-timeout=5",
    ]
    environment = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    log: deque[str] = deque(maxlen=200)
    listening = threading.Event()

    def drain() -> None:  # read the log to the end, so the pipe never fills and blocks the server
        for line in process.stderr:
            log.append(line.rstrip())
            if "Listening at:" in line:
                listening.set()
        listening.set()  # the log ended: the server exited (checked below)

    reader = threading.Thread(target=drain, name="gunicorn-log", daemon=True)
    reader.start()
    try:
        if not listening.wait(START_TIMEOUT) or process.poll() is not None:
            raise RuntimeError("gunicorn did not start:\n" + "\n".join(log))
        yield Server("127.0.0.1", port, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # graceful: workers finish their requests, close connections
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
