"""A per-credential rate limit: ``API_RATE_LIMIT`` requests per ``API_RATE_WINDOW_SECONDS``.

A token bucket in its timer-free form (GCRA, the "generic cell rate algorithm"): each
credential has a theoretical arrival time (TAT) that every accepted request pushes one
interval (window / limit) further, and a request is refused while the TAT is more than a
full bucket ahead of now. So a credential may burst up to the limit at once, then goes at
the steady rate; a refused caller is told to come back when the next request fits, which at
the default rate (6,000 a minute: one every 10 ms) is the shortest ``Retry-After`` HTTP
allows, 1 second, instead of waiting for a fixed window to end.

With a Redis URL (``API_RATE_LIMIT_REDIS_URL``, by default ``REDIS_URL``) the TAT is shared
by every process: one script call per request, which reads, decides and writes atomically.
Without one, each process keeps its own (the limit is then per process). ``API_RATE_LIMIT =
0`` turns it off. A Redis that cannot be reached lets requests through (logged): metering
must not stop because its guard did.

The same script call reads how many credentials have been revoked anywhere (a counter that
revoking increments, :func:`revocation_announce`), so each process learns of a revocation at its
next request at no cost of its own (api/credentials.py keeps verified credentials briefly).
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger("billing.api")

MICROSECONDS = 1_000_000

REVOCATIONS_KEY = "sigora:api:credential-revocations"

# KEYS[1]: the credential's TAT (µs); KEYS[2]: the revocation counter. ARGV: now, interval,
# burst tolerance (all µs). Answers {0 (accepted, TAT moved on) or the µs to wait (refused,
# nothing changed), the revocations so far}.
_GCRA = """
local now, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local revocations = tonumber(redis.call('GET', KEYS[2]) or '0')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return {wait, revocations} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {0, revocations}
"""

_clients: dict[str, redis.Redis] = {}
_scripts: dict[str, object] = {}
_local: dict[str, int] = {}  # credential: TAT in µs
_local_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    return _clients.setdefault(url, redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5))


def _script(url: str):
    script = _scripts.get(url)
    if script is None:
        script = _scripts[url] = _client(url).register_script(_GCRA)
    return script


def _wait(credential: str, now: int, interval: int, tolerance: int) -> tuple[int, int | None]:
    """Microseconds until ``credential`` may make a request (0: now, and it is counted), and the
    revocations so far (None: not known here, without Redis)."""
    url = settings.API_RATE_LIMIT_REDIS_URL
    if url:
        try:
            wait, revocations = _script(url)(
                keys=[f"sigora:api:gcra:{credential}", REVOCATIONS_KEY], args=[now, interval, tolerance]
            )
            return int(wait), int(revocations)
        except redis.RedisError as error:
            logger.warning("rate limit not applied: redis unavailable (%s)", error)
            return 0, None
    with _local_lock:
        tat = max(_local.get(credential, 0), now)
        wait = tat - tolerance - now
        if wait > 0:
            return wait, None
        _local[credential] = tat + interval
        if len(_local) > 100_000:  # many credentials seen once: forget those whose bucket is full again
            for idle in [key for key, seen in _local.items() if seen <= now]:
                del _local[idle]
    return 0, None


def rate_limit_admit(credential: str) -> tuple[int | None, int | None]:
    """Count one request: the whole seconds to wait when it is over the limit (else None), and the
    revocation counter when the call read it (else None)."""
    limit = settings.API_RATE_LIMIT
    if not limit:
        return None, None
    interval = settings.API_RATE_WINDOW_SECONDS * MICROSECONDS // limit
    tolerance = interval * (limit - 1)  # a full bucket: `limit` requests at once
    wait, revocations = _wait(credential, int(time.time() * MICROSECONDS), interval, tolerance)
    return (max(1, math.ceil(wait / MICROSECONDS)) if wait > 0 else None), revocations


def revocation_announce() -> None:
    """Count a revocation where every process's next rate-limit call reads it (nothing without Redis)."""
    url = settings.API_RATE_LIMIT_REDIS_URL
    if not url:
        return
    try:
        _client(url).incr(REVOCATIONS_KEY)
    except redis.RedisError as error:
        logger.warning("revocation not announced: redis unavailable (%s)", error)


def rate_limit_reset() -> None:
    """Forget the in-process buckets (tests)."""
    with _local_lock:
        _local.clear()
