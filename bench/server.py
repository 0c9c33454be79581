"""The app under gunicorn or granian, as production runs it, on a free loopback port: for bench/api.py and tests.

Only ever 127.0.0.1. The server is a child process started with the environment given
(``DATABASE_URL`` of the database to serve, settings module, tuning), stopped with SIGTERM
when the block ends, and its output kept so a failure to start says why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sigora.embedded_db import database_url  # noqa: F401  (the URL to hand the server: api.py and tests/api/test_load.py)
from stack.servers import APP, Shape, granian_command, gunicorn_command

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds for the server to import the app and listen
HOST = "127.0.0.1"
GRACEFUL_SECONDS = 5  # what a stopping server gives the requests it is answering (production: 20)


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    pid: int
    # The server's output so far (its last 200 lines): its own log, the access log when asked for, the app's stderr.
    log: deque[str] = field(default_factory=deque, compare=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick); the server binds it a moment later."""
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
    app: str = APP,
    access_log: bool = False,
) -> Iterator[Server]:
    """Serve ``app`` (the product's WSGI application unless told otherwise) on 127.0.0.1 until the block ends.

    The command is production's (stack/servers.py) but for the port and a shorter graceful stop.
    ``--preload``: the master imports the app once and then listens, so "Listening at" in its
    log means every request from then on is answered (the workers fork from it).
    """
    port = free_port()
    command = gunicorn_command(Shape(HOST, port, workers, threads, access_log, GRACEFUL_SECONDS, app))
    with _served("gunicorn", command, port, env, settings_module, ready=lambda line: "Listening at:" in line) as server:
        yield server


@contextmanager
def granian_serve(
    *,
    env: Mapping[str, str],
    workers: int,
    threads: int,
    settings_module: str,
    app: str = APP,
    access_log: bool = False,
) -> Iterator[Server]:
    """Serve ``app`` with granian's WSGI interface on 127.0.0.1 until the block ends; as gunicorn_serve.

    Each worker process imports the app itself (granian has no preload) and logs "Started
    worker-N" once it serves, so the block starts when every worker has.
    """
    port = free_port()
    command = granian_command(Shape(HOST, port, workers, threads, access_log, GRACEFUL_SECONDS, app))
    started = set()

    def ready(line: str) -> bool:
        if line.startswith("[INFO] Started worker-"):
            started.add(line)
        return len(started) == workers

    with _served("granian", command, port, env, settings_module, ready=ready) as server:
        yield server


SERVES = {"gunicorn": gunicorn_serve, "granian": granian_serve}


@contextmanager
def _served(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str],
    settings_module: str,
    *,
    ready: Callable[[str], bool],
) -> Iterator[Server]:
    """Run ``command`` until the block ends: ready once a line of its output satisfies ``ready``; SIGTERM after."""
    environment = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log: deque[str] = deque(maxlen=200)
    listening = threading.Event()

    def drain() -> None:  # read the output to the end, so the pipe never fills and blocks the server
        for line in process.stdout:
            log.append(line.rstrip())
            if not listening.is_set() and ready(line):
                listening.set()
        listening.set()  # the output ended: the server exited (checked below)

    reader = threading.Thread(target=drain, name=f"{name}-log", daemon=True)
    reader.start()
    try:
        if not listening.wait(START_TIMEOUT) or process.poll() is not None or not reader.is_alive():
            raise RuntimeError(f"{name} did not start:\n" + "\n".join(log))
        yield Server(HOST, port, process.pid, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # graceful: workers finish their requests, close connections
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)
