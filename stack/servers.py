"""The application server's command line, written once: the stack's app nodes and bench/server.py both run these.

Two servers were measured side by side (bench/api.py, ``BENCH_SERVER=both``; docs/performance.md,
"The application server"): gunicorn's gthread worker and granian's WSGI interface. ``APP_SERVER``
is the one production runs; ``STACK_APP_SERVER`` picks the other for a stack (stack/config.py).

What each command holds, for either server:

* **graceful stop**: SIGTERM stops accepting, lets each request under way finish for up to
  ``graceful`` seconds, then kills what is left;
* **a worker that dies is replaced** (gunicorn's arbiter always; granian with
  ``--respawn-failed-workers``), and the other workers go on serving meanwhile;
* **access log** on stdout, one line per request, when asked for;
* **keep-alive** longer than the balancer keeps an idle connection to a node, so a node never
  closes a connection HAProxy is about to reuse (HAProxy closes its idle ones first);
* **bounded requests**: the request line and headers by the server (gunicorn's limits, granian's
  HTTP/1 buffer), the body by the app from its Content-Length before reading it (the API's
  ``API_MAX_BODY_BYTES``, Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` for the pages) and by the balancer;
* **no request time limit**: neither server stops a request that runs long (gunicorn's
  ``--timeout`` watches the gthread worker's main loop, not its request threads); the balancer's
  ``timeout server`` and PostgreSQL's ``statement_timeout``/``lock_timeout`` bound it (docs/operations.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

APP = "sigora.wsgi:application"
APP_SERVER = "granian"  # measured faster, every behaviour above kept: docs/performance.md, "The application server"
GRACEFUL_SECONDS = 20  # what a stopping node gives the requests under way (the stack waits 30 s before SIGKILL)
# An idle client connection is kept this long: longer than HAProxy keeps one (stack/files.py: 10 s to its
# clients, timeout http-keep-alive; its idle connections to the nodes are purged sooner, pool-purge-delay 5 s).
# granian's limit is 60 s: it closes a connection whose next request's head has not arrived within its
# header-read timeout, which is therefore this.
KEEP_ALIVE_SECONDS = 60
# A node's shape: worker processes × threads each (a thread keeps one database connection). The stack's
# nodes run it, and bench/api.py measures it unless told otherwise. With two threads or more, a worker
# that accepted two keep-alive connections no longer serves them strictly in turn (docs/performance.md,
# "The application server": 4 × 1 kept 0.62 of the ceiling with four callers on 50 workspaces, 2 × 4 0.74).
NODE_WORKERS = 2
NODE_THREADS = 4


@dataclass(frozen=True)
class Shape:
    """What a node's server is given: where it listens, its processes and threads, and its logging."""

    host: str
    port: int
    workers: int
    threads: int  # per worker: each runs the app and keeps a database connection
    access_log: bool = True
    graceful: int = GRACEFUL_SECONDS
    app: str = APP


def gunicorn_command(shape: Shape) -> list[str]:
    """gunicorn's gthread worker, the app imported once by the master (``--preload``) before the workers fork.

    "Listening at" in its log (an info line) means every request from then on is answered.
    """
    return [
        sys.executable,
        "-m",
        "gunicorn",
        shape.app,
        f"--bind={shape.host}:{shape.port}",
        f"--workers={shape.workers}",
        f"--threads={shape.threads}",
        "--worker-class=gthread",  # threads keep client connections alive between requests
        "--preload",
        f"--keep-alive={KEEP_ALIVE_SECONDS}",
        "--timeout=30",  # a worker whose main loop stops answering this long is killed and replaced
        f"--graceful-timeout={shape.graceful}",
        "--limit-request-line=8190",
        "--log-level=info",
        *(["--access-logfile=-"] if shape.access_log else []),
    ]


def granian_command(shape: Shape) -> list[str]:
    """granian's WSGI interface: ``threads`` blocking threads per worker run the app, one Rust thread serves sockets.

    Each worker imports the app itself (granian has no preload) and logs "Started worker-N" once
    it serves. A worker that dies is respawned, unless it dies again within 5.5 s of its respawn:
    granian then calls it a crash loop and exits, and the supervisor starts it again.
    """
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface=wsgi",
        f"--host={shape.host}",
        f"--port={shape.port}",
        f"--workers={shape.workers}",
        # The app's threads: granian's default for WSGI is half its backpressure (512 ÷ workers), a
        # database connection each; the pool behind the nodes is sized for workers × threads.
        f"--blocking-threads={shape.threads}",
        "--blocking-threads-idle-timeout=600",  # a thread that idles out takes its database connection with it
        "--runtime-threads=1",
        "--http=1",  # HTTP/1.1, what the balancer speaks to the nodes
        "--no-ws",
        "--http1-keep-alive",
        f"--http1-header-read-timeout={KEEP_ALIVE_SECONDS * 1000}",
        "--respawn-failed-workers",
        f"--workers-kill-timeout={shape.graceful}",
        "--log-level=info",
        *(["--access-log"] if shape.access_log else ["--no-access-log"]),
        shape.app,
    ]


COMMANDS: dict[str, Callable[[Shape], list[str]]] = {"gunicorn": gunicorn_command, "granian": granian_command}
