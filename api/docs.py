"""The served schema (``/api/v1/openapi.json``) and its browsable docs (``/api/v1/docs``).

The docs are one server-rendered page drawn from the same document: no JavaScript, no
assets from anywhere else.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from api.schema import openapi_document


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(), json_dumps_params={"ensure_ascii": False})


def _resolve(document: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        _, section, kind, name = node["$ref"].split("/")
        return document[section][kind][name]
    return node


# The order the page presents the operations in: what a caller needs first.
TAG_ORDER = ["Charges", "Holds", "Reading", "Reply detection", "BYOK"]


def prose(text: str) -> SafeString:
    """The document's descriptions as HTML: escaped, with `backticks` as <code>."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)))  # escaped first


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    document = openapi_document()
    operations = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            operations.append(
                {
                    "anchor": operation["operationId"],
                    "method": method.upper(),
                    "path": document["servers"][0]["url"] + path,
                    "summary": operation["summary"],
                    "description": prose(operation.get("description", "")),
                    "tag": operation["tags"][0],
                    "parameters": [
                        {**parameter, "description": prose(parameter.get("description", ""))}
                        for parameter in (_resolve(document, p) for p in operation.get("parameters", []))
                    ],
                    "body_shape": _shape(body),
                    "body": json.dumps(body, indent=2) if body and not _shape(body) else "",
                    "responses": [
                        {
                            "status": status,
                            "description": prose(response["description"]),
                            "codes": _codes(response),
                            "shape": _shape(response.get("content", {}).get("application/json", {}).get("schema")),
                            "retry_after": "headers" in response,
                        }
                        for status, response in sorted(operation["responses"].items())
                    ],
                }
            )
    rank = {tag: n for n, tag in enumerate(TAG_ORDER)}
    operations.sort(key=lambda op: (rank.get(op["tag"], len(rank)), op["path"]))
    context = {
        "info": {**document["info"], "description": prose(document["info"]["description"])},
        "operations": operations,
        "schemas": [
            {"name": name, "json": json.dumps(value, indent=2)}
            for name, value in document["components"]["schemas"].items()
        ],
    }
    return render(request, "api/docs.html", context)


def _shape(schema: dict[str, Any] | None) -> str:
    """The component a schema is just a reference to ("ChargeRequest"), else ""."""
    if isinstance(schema, dict) and set(schema) == {"$ref"}:
        return schema["$ref"].rsplit("/", 1)[-1]
    return ""


def _codes(response: dict[str, Any]) -> list[str]:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    for part in schema.get("allOf", []):
        codes = part.get("properties", {}).get("code", {}).get("enum")
        if codes:
            return codes
    return []
