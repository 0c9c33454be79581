"""The pages' answer to an error no view handled: Django's 500 page, or a 503 while the database cannot answer.

PostgreSQL or PgBouncer restarting, a lost connection, a statement past its timeout: the request did not
fail for a reason of its own, and the same request a moment later will most likely work. So people get
"try again in a moment" with ``Retry-After`` and a 503 (which the balancer's health checks and anyone's
monitoring read as "unavailable", not "broken"), as the API's callers get in JSON (api/http.py). Django
calls this as ``handler500`` while the exception is being handled, so ``sys.exc_info()`` names it.
"""

from __future__ import annotations

import logging
import sys

from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token
from django.views.defaults import server_error as django_server_error

from billing.db import DATABASE_ERRORS

logger = logging.getLogger("billing.pages")

RETRY_AFTER_SECONDS = 5


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    error = sys.exc_info()[1]
    if not isinstance(error, DATABASE_ERRORS):
        return django_server_error(request)
    # Standalone like 500.html: it must render with no database, no session and no URL names.
    response = HttpResponse(loader.render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    logger.warning("page %s %s: database unavailable (%s)", request.method, request.path, type(error).__name__)
    return response
