"""Counting requests per key in fixed windows, in the cache: Redis when ``REDIS_URL`` is set (shared by
every process), else each process's memory. For slow, rare requests (a password reset), not the hot path.
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def window_count(*, scope: str, key: str, window_seconds: int) -> int:
    """Count one more request for ``key`` in the window now falls in; the count so far, this one included.

    The key is hashed (the cache never holds an email address), and the window's number is part of the
    cache key, so a new window starts from zero whatever the cache's own clock says. A cache that cannot
    be reached counts 0 (logged): the requests it guards are not stopped because their guard is down.
    """
    window = int(time.time() // window_seconds)
    cache_key = f"throttle:{scope}:{hashlib.sha256(key.encode()).hexdigest()}:{window}"
    try:
        cache.add(cache_key, 0, timeout=window_seconds)
        try:
            return cache.incr(cache_key)
        except ValueError:  # it expired between the two calls: this request is the window's first
            cache.add(cache_key, 1, timeout=window_seconds)
            return 1
    except (RedisError, OSError):
        logger.warning("throttle %s: the cache could not be reached; not counted", scope, exc_info=True)
        return 0
