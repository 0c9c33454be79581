"""Show times in the reader's own time zone (a cookie the browser sets); hold a session at its second factor."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

from billing import second_factor

TZ_COOKIE = "tz"


class ReaderTimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.COOKIES.get(TZ_COOKIE, "")
        try:
            timezone.activate(zoneinfo.ZoneInfo(name)) if name else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class SecondFactorMiddleware:
    """A session that owes its second factor reaches nothing but that step (billing/second_factor.py).

    After OTPMiddleware. Deny by default: every page, fragment and the whole admin send it to the
    code (or enrolment) page, which then returns it where it was going.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.open_paths: frozenset[str] | None = None  # reversed at the first request: URLs are loaded by then

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if second_factor.pending(request):
            if self.open_paths is None:
                self.open_paths = second_factor.open_paths()
            if request.path not in self.open_paths:
                return self._to_step(request)
        return self.get_response(request)

    @staticmethod
    def _to_step(request: HttpRequest) -> HttpResponse:
        back = request.get_full_path() if request.method == "GET" and not request.htmx else ""
        url = second_factor.step_url(request) + (f"?{urlencode({'next': back})}" if back else "")
        # An htmx fragment would otherwise show the code page inside the region it replaces.
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
