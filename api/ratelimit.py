"""A per-credential rate limit: a fixed window of ``API_RATE_WINDOW_SECONDS``.

With a Redis URL (``API_RATE_LIMIT_REDIS_URL``, by default ``REDIS_URL``) the count is
shared by every process: one pipelined INCR + EXPIRE per request. Without one, each process
counts for itself (the limit is then per process). ``API_RATE_LIMIT = 0`` turns it off.
A Redis that cannot be reached lets requests through (logged): metering must not stop
because its guard did.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger("billing.api")

_clients: dict[str, redis.Redis] = {}
_local: dict[str, tuple[int, int]] = {}  # credential: (window number, requests counted in it)
_local_lock = threading.Lock()


def _redis(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return client


def _count(credential: str, window: int, seconds: int) -> int:
    url = settings.API_RATE_LIMIT_REDIS_URL
    if url:
        key = f"sigora:api:rate:{credential}:{window}"
        try:
            pipe = _redis(url).pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, seconds + 1)  # the window's key outlives it by a second, then goes
            count, _ = pipe.execute()
            return int(count)
        except redis.RedisError as error:
            logger.warning("rate limit not applied: redis unavailable (%s)", error)
            return 0
    with _local_lock:
        seen_window, count = _local.get(credential, (window, 0))
        count = count + 1 if seen_window == window else 1
        _local[credential] = (window, count)
        if len(_local) > 100_000:  # many credentials seen once: forget the windows that have ended
            for stale in [k for k, (w, _) in _local.items() if w != window]:
                del _local[stale]
    return count


def rate_limit_check(credential: str) -> int | None:
    """Count one request; the seconds to wait when it is over the limit, else None."""
    limit = settings.API_RATE_LIMIT
    if not limit:
        return None
    seconds = settings.API_RATE_WINDOW_SECONDS
    now = time.time()
    window = int(now // seconds)
    if _count(credential, window, seconds) <= limit:
        return None
    return max(1, math.ceil((window + 1) * seconds - now))


def rate_limit_reset() -> None:
    """Forget the in-process counts (tests)."""
    with _local_lock:
        _local.clear()
