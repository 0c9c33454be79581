"""``/healthz`` and ``/readyz``: is this process up, and can it serve. Answered before the rest of the stack.

- ``/healthz`` is shallow: the process answers, with no database, Redis, session or user work.
  It is what a load balancer checks every second or two (docs/operations.md).
- ``/readyz`` runs ``SELECT 1`` on the primary and, when configured, on the replica, and pings
  Redis (``REDIS_URL``), each with a short timeout: 200 with ``"ok"`` for each, or 503 naming
  what is ``"unavailable"``. Why is logged here; connection strings and errors never go out.

The middleware sits right after Django's security middleware, whose HSTS and nosniff headers the
answers get and which leaves these two paths on plain HTTP (``SECURE_REDIRECT_EXEMPT``), so a
balancer's check behind TLS termination is not redirected. Nothing below it runs: no session, CSRF,
user, static files or rate limit, and the Host header is not checked against ``ALLOWED_HOSTS``
(a balancer asks by address).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

OK, UNAVAILABLE = "ok", "unavailable"
REDIS_TIMEOUT_SECONDS = 1.0
# The database's is its connection's: DB_CONNECT_TIMEOUT (sigora/settings/base.py) to connect,
# and a SELECT 1 answers at once from a server that answers at all.


def healthz() -> JsonResponse:
    return JsonResponse({"status": OK})


def database_state(alias: str) -> str:
    """``SELECT 1`` on the connection this process serves requests with (opened, or checked and
    reopened after a restart, as a request's first query would)."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("readyz: database %r unavailable: %s", alias, error)
        return UNAVAILABLE
    return OK


@functools.cache
def redis_client(url: str) -> redis.Redis:
    # One try, briefly: a health check that retries with backoff answers late, and late is down.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def redis_state(url: str) -> str:
    try:
        redis_client(url).ping()
    except redis.RedisError as error:
        logger.warning("readyz: redis unavailable: %s", error)
        return UNAVAILABLE
    return OK


def readyz() -> JsonResponse:
    states = {"database": database_state(DEFAULT_DB_ALIAS)}
    if settings.REPLICA_DATABASE:
        states["replica"] = database_state(settings.REPLICA_DATABASE)
    if settings.REDIS_URL:
        states["redis"] = redis_state(settings.REDIS_URL)
    ready = all(state == OK for state in states.values())
    return JsonResponse(states, status=200 if ready else 503)


CHECKS: dict[str, Callable[[], JsonResponse]] = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check = CHECKS.get(request.path_info)
        if check is None:
            return self.get_response(request)
        response = check() if request.method in ("GET", "HEAD") else HttpResponseNotAllowed(["GET", "HEAD"])
        response["Cache-Control"] = "no-store"  # a cached "ok" would hide the process going down
        return response
