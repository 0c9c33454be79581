"""WSGI entry point (gunicorn sigora.wsgi).

``/api/`` is answered by a Django handler of its own whose middleware is ``API_MIDDLEWARE``:
what token-authenticated JSON needs (the security headers), not the pages' sessions, CSRF,
auth, messages, htmx and reader's time zone, which an API call never uses and which cost a
single charge about a quarter of its server time. Everything else, the pages, the admin and
the Stripe webhook, goes through ``MIDDLEWARE`` as before. Both share the one URLconf.
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.production")


class ApiHandler(WSGIHandler):
    """Django's WSGI handler with ``API_MIDDLEWARE`` in place of ``MIDDLEWARE``."""

    def load_middleware(self, is_async=False):
        # Django builds the chain from settings.MIDDLEWARE; it is swapped only while this handler is
        # made, at import, before any request is served.
        pages = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = pages


class PathDispatch:
    """Send each request to the API's handler or the pages' by its path."""

    def __init__(self, *, pages, api, api_prefix: str = "/api/", pages_under_api: tuple[str, ...] = ()) -> None:
        self.pages, self.api, self.api_prefix, self.pages_under_api = pages, api, api_prefix, pages_under_api

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        api = path.startswith(self.api_prefix) and not path.startswith(self.pages_under_api)
        return (self.api if api else self.pages)(environ, start_response)


# The API's docs are a page for people (the site's header knows who is signed in).
application = PathDispatch(pages=get_wsgi_application(), api=ApiHandler(), pages_under_api=("/api/v1/docs",))
