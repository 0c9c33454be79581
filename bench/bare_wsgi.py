"""The floor under any HTTP endpoint for a charge: ``charge()`` behind gunicorn with nothing else.

bench/api.py serves this beside the real app to show how much of the in-process rate survives
gunicorn, the loopback socket and a client process alone: no Django request or response, no URL
routing, no middleware, no credential, a fixed answer. No endpoint built on Django can be
faster, so its ratio is the ceiling for ``POST /api/v1/charges``'s. Never part of the product:
only bench/api.py starts it, on 127.0.0.1, against its own benchmark database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.dev")

import django

django.setup()

from billing.services import BillingError, charge  # noqa: E402  (needs the apps loaded)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    event = json.loads(environ["wsgi.input"].read(length))
    try:
        entry = charge(workspace=int(environ["HTTP_SIGORA_WORKSPACE"]), **event)
        status, body = "201 Created", json.dumps({"id": entry.pk}).encode()
    except BillingError as error:
        status, body = "402 Payment Required", json.dumps({"code": error.code}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
