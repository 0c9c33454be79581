"""Answer /api/v1/ before the pages' middleware: one stack for tests and production alike.

Token-authenticated JSON reads no session, cookie or CSRF token, has no messages, no htmx and
no reader's time zone; that middleware cost a single charge about a quarter of its server
time. So this middleware sits in ``MIDDLEWARE`` right after the security middleware (whose
headers every answer gets) and, for an API route, calls the API's view itself and returns its
answer: the static-file, session, CSRF, auth, message, clickjacking, htmx and time-zone
middleware below it never run for the API. Everything else, the API's docs page (a page for
people, with the site's header) included, goes on down the stack. Django's test client and
gunicorn both run ``MIDDLEWARE``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, URLResolver, get_resolver, get_urlconf, reverse

API_PREFIX = "/api/v1/"
# JSON is never a page, so its policy allows nothing at all (OWASP's REST Security Cheat Sheet): should a
# browser ever render an answer, nothing in it loads or runs, and no site may frame it. The pages' policy,
# which django-csp builds per request below this middleware, is sigora/csp.py's.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


@functools.lru_cache(maxsize=1024)
def _route(resolver: URLResolver, path: str) -> ResolverMatch:
    # Walking the URL patterns was about a tenth of the layer around a charge (docs/performance.md),
    # and the API has a few dozen paths. Keyed by the resolver too, so a changed urlconf is never
    # answered from the old one; an unknown path raises Resolver404 and is not kept.
    return resolver.resolve(path)


@functools.cache
def pages_under_api() -> frozenset[str]:
    """The paths under the prefix that are pages for people."""
    return frozenset({reverse("api:openapi-view")})


class ApiFirstMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if not path.startswith(API_PREFIX) or path in pages_under_api():
            return self.get_response(request)
        match = _route(get_resolver(get_urlconf()), path)  # an unknown path raises Resolver404: Django answers its 404
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("Content-Security-Policy", API_POLICY)
        return response
