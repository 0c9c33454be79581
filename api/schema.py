"""The API itself: one django-ninja application whose operations are ``api.views``' and ``api.holds``'.

Each operation's pydantic models validate its request and are its part of the OpenAPI 3.1
document, so an endpoint and its description cannot drift apart (the test suite also fuzzes the
served document against the served endpoints with schemathesis). The document is served at
``/api/v1/openapi.json`` and shown by ``/api/v1/docs`` (Swagger UI, from the ninja wheel's own
static files, served by this site: no outside assets).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.errors import ValidationError
from ninja.openapi.docs import DocsBase
from pydantic.json_schema import models_json_schema

from api import holds, views
from api.http import (
    COMPONENTS,
    ApiError,
    BodyParser,
    api_error_response,
    billing_error_response,
    database_error_response,
    method_not_allowed_json,
    too_deep_response,
    validation_error_response,
)
from api.shapes import Error
from billing.db import DATABASE_ERRORS
from billing.errors import BillingError

API_VERSION = "1.0.0"
SERVER_PATH = "/api/v1"
REF_TEMPLATE = "#/components/schemas/{model}"


class DocsPage(DocsBase):
    """/api/v1/docs: Swagger UI in the site's page, drawing the served document."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        settings = {"url": self.get_openapi_url(api, kwargs), "layout": "BaseLayout", "deepLinking": True}
        return render(request, "api/docs.html", {"title": api.title, "swagger_settings": settings})


class SigoraApi(NinjaAPI):
    """ninja with the API's paths relative to ``servers`` and its shared components in the document."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        document = super().get_openapi_schema(path_prefix="", path_params=path_params)
        _, definitions = models_json_schema([(Error, "serialization")], ref_template=REF_TEMPLATE)
        document["components"]["schemas"].update(definitions.get("$defs", {}))
        for section, entries in COMPONENTS.items():
            document["components"].setdefault(section, {}).update(entries)
        document["security"] = [{"bearer": []}]
        return document

    @property
    def urls(self):
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            pattern.callback = method_not_allowed_json(pattern.callback)
        return patterns, app_name, namespace


api = SigoraApi(
    title="Sigora Billing & Credits API",
    version=API_VERSION,
    description=(
        "Meter usage against a workspace's credits. JSON in and out. Authenticate with "
        "`Authorization: Bearer <token>`; with a service token, name the workspace in the "
        '`Sigora-Workspace` header. Amounts are exact: `{"credits": "0.7", "millicredits": 700}`.'
    ),
    servers=[{"url": SERVER_PATH}],
    urls_namespace="api",
    docs=DocsPage(),
    parser=BodyParser(),
)
api.add_exception_handler(ApiError, api_error_response)
api.add_exception_handler(BillingError, billing_error_response)
api.add_exception_handler(ValidationError, validation_error_response)
api.add_exception_handler(RecursionError, too_deep_response)
for database_error in DATABASE_ERRORS:  # the ORM's (Django's) and the charging path's raw cursor's (psycopg's)
    api.add_exception_handler(database_error, database_error_response)
api.add_router("", views.router)
api.add_router("", holds.router)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole document as a client reads it (JSON: status codes are strings)."""
    return json.loads(json.dumps(api.get_openapi_schema()))
