"""The project's own URLs, reversed once per process.

``reverse()`` walks the URL patterns and quotes every argument on each call; the settings pages
name some twenty URLs a request (navigation, one form per pack and plan), which cost more than
their queries. The answers depend only on the names and arguments and on the URLconf and
script prefix in force, so those are the cache key and nothing can be served for the wrong one.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse


@functools.lru_cache(maxsize=1024)
def _reversed(urlconf: str | None, prefix: str, viewname: str, args: tuple[str, ...]) -> str:
    return reverse(viewname, urlconf=urlconf, args=args)


def link(viewname: str, *args: object) -> str:
    """``reverse(viewname, args=args)``, computed once per URLconf, script prefix and arguments."""
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    return _reversed(urlconf, get_script_prefix(), viewname, tuple(str(arg) for arg in args))
