"""The OpenAPI 3.1 document, assembled from what each endpoint declares beside its view.

``api.http.endpoint`` registers every operation here (path, method, parameters, body and
each status it can answer with its error codes); the shared shapes are the components
below. The document is built once per process from that registry, so an endpoint and its
description cannot drift apart: the test suite fuzzes the served document against the
served endpoints (schemathesis).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from billing.bounds import BIGINT_MAX

API_VERSION = "1.0.0"
SERVER_PATH = "/api/v1"

CREDITS_PATTERN = r"^-?[0-9]+(\.[0-9]{1,3})?$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


AMOUNT = {
    "type": "object",
    "description": (
        "An exact amount of credits, twice: `credits` as a decimal string (at most three decimals, no "
        'thousands separators: a 7-token Haiku call is "0.7") and `millicredits` as an integer '
        "(1 credit = 1,000 millicredits). Never a float."
    ),
    "required": ["credits", "millicredits"],
    "properties": {
        "credits": {"type": "string", "pattern": CREDITS_PATTERN, "examples": ["0.7", "-1500", "80000"]},
        "millicredits": {"type": "integer", "examples": [700]},
    },
    "additionalProperties": False,
}

BALANCE = {
    "type": "object",
    "description": "The wallet's two buckets and their total.",
    "required": ["plan", "topup", "total"],
    "properties": {"plan": ref("Amount"), "topup": ref("Amount"), "total": ref("Amount")},
    "additionalProperties": False,
}

ERROR = {
    "type": "object",
    "description": (
        "Every error has this shape: a stable `code`, a `message` a person can read, and details that "
        "depend on the code (amounts as `Amount` objects)."
    ),
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "field": nullable({"type": "string", "description": "The input that was wrong (422)."}),
        "required": ref("Amount"),
        "available": ref("Amount"),
        "reserved": {"allOf": [ref("Amount")], "description": "Held by active holds (not available)."},
        "hold_id": {"type": "integer"},
        "entry_id": {"type": "integer"},
        "max_active_holds": {"type": "integer"},
        "specialist": {"type": "string"},
        "resets_at": {"type": "string", "format": "date-time"},
        "daily_cap": ref("Amount"),
        "spent_today": ref("Amount"),
        "limit": {"type": "string", "enum": ["monthly_budget"]},
        "budget": ref("Amount"),
        "spent_this_period": ref("Amount"),
        "leads": {"type": "array", "items": {"type": "string"}},
        "idempotency_key": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": True,
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "schemas": {"Amount": AMOUNT, "Balance": BALANCE, "Error": ERROR},
    "securitySchemes": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>`: a service token (`sgs_…`, created by staff in the admin) or a "
                "workspace API key (`sgk_…`, Settings → API keys)."
            ),
        }
    },
    "parameters": {
        "Workspace": {
            "name": "Sigora-Workspace",
            "in": "header",
            "required": False,
            "description": (
                "The workspace id to act on. Required with a service token; an API key acts on its own "
                "workspace and may name only that one."
            ),
            "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
        }
    },
    "headers": {
        "RetryAfter": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
}

_operations: dict[str, dict[str, dict[str, Any]]] = {}


def schema_component(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Add a named schema to the components (once) and return a reference to it."""
    existing = COMPONENTS["schemas"].get(name)
    if existing is not None and existing != schema:
        raise ValueError(f"schema component {name!r} is defined twice, differently")
    COMPONENTS["schemas"][name] = schema
    return ref(name)


def error_response(description: str, codes: list[str], *, retry_after: bool = False) -> dict[str, Any]:
    """A response whose body is the error shape with ``code`` one of ``codes``."""
    schema = {"allOf": [ref("Error"), {"properties": {"code": {"enum": sorted(set(codes))}}}]}
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return response


def operation_register(path: str, method: str, operation: dict[str, Any]) -> None:
    methods = _operations.setdefault(path, {})
    if method in methods:
        raise ValueError(f"{method.upper()} {path} is registered twice")
    methods[method] = operation
    openapi_document.cache_clear()


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once; endpoints register when their modules are imported)."""
    import api.urls  # noqa: F401  (imports every endpoint module, so all have registered)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sigora Billing & Credits API",
            "version": API_VERSION,
            "description": (
                "Meter usage against a workspace's credits. JSON in and out. Authenticate with "
                "`Authorization: Bearer <token>`; with a service token, name the workspace in the "
                '`Sigora-Workspace` header. Amounts are exact: `{"credits": "0.7", "millicredits": 700}`.'
            ),
        },
        "servers": [{"url": SERVER_PATH}],
        "security": [{"bearer": []}],
        "paths": copy.deepcopy(dict(sorted(_operations.items()))),
        "components": copy.deepcopy(COMPONENTS),
    }
