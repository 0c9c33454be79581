"""The plumbing every API endpoint shares: auth, workspace, rate limit, body, JSON and errors.

An endpoint is a plain function view wrapped by :func:`endpoint`, which declares its
OpenAPI operation beside it and, on each request, in this order:

1. refuses another method (405, JSON, with ``Allow``);
2. authenticates the bearer token (401 ``unauthenticated``, one message for every reason);
3. resolves the workspace: the ``Sigora-Workspace`` header for a service token, the key's
   own for an API key (404 ``not_found``, the same whether or not it exists);
4. counts the request against the credential's rate limit (429 ``rate_limited``);
5. refuses a body over the endpoint's size limit from its Content-Length, before reading
   it (413 ``payload_too_large``), then parses it (400 ``invalid_json``);
6. runs the view, and renders any :class:`~billing.errors.BillingError` it raises as
   ``{"code", "message", …details}`` with the error's status (and ``Retry-After`` when it
   carries ``resets_at``).

Views get ``request.api`` (an :class:`ApiCall`) and return :func:`json_response`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from api import schema
from api.credentials import Caller, credential_authenticate
from api.ratelimit import rate_limit_check
from billing.bounds import id_parsed
from billing.credits import MAX_MILLICREDITS, CreditsInputError, credits_input, format_credits
from billing.errors import BillingError

WORKSPACE_HEADER = "Sigora-Workspace"
_WORKSPACE_META = "HTTP_SIGORA_WORKSPACE"
UNAUTHENTICATED_MESSAGE = "Missing or invalid credentials: send Authorization: Bearer <token> with a live token."
NOT_FOUND_MESSAGE = "No such workspace for this credential."
# Error details that are amounts of credits (millicredits in BillingError.details).
_AMOUNT_DETAILS = frozenset(
    {"required", "available", "reserved", "daily_cap", "spent_today", "budget", "spent_this_period"}
)


# --- Amounts -------------------------------------------------------------------------------


def amount(milli: int) -> dict[str, Any]:
    """An amount as the API writes it: ``{"credits": "0.7", "millicredits": 700}`` (schema ``Amount``)."""
    return {"credits": format_credits(milli, grouped=False), "millicredits": milli}


def amount_param(value: Any, *, field: str) -> int:
    """Millicredits from an input amount: a decimal string of credits ("12.5"), exact to 0.001, within the bound."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(
            422, "invalid_request", f'{field} must be a decimal string of credits, e.g. "12.5".', field=field
        )
    try:
        return credits_input(value, minimum=-MAX_MILLICREDITS, grouped=False)
    except CreditsInputError as error:
        raise ApiError(422, "invalid_request", f"{field}: {error}", field=field) from None


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- Errors and responses --------------------------------------------------------------------


class ApiError(Exception):
    """A refusal the HTTP layer itself makes (auth, limits, parsing); rendered like a BillingError."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **details):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})
        self.details = details


def json_response(payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False), content_type="application/json", status=status
    )
    response["Cache-Control"] = "no-store"
    # Known length: gunicorn then sends the body as it is, not chunked (fewer writes per answer).
    response["Content-Length"] = str(len(response.content))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_json(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **details
) -> HttpResponse:
    return json_response({"code": code, "message": message, **details}, status=status, headers=headers)


def _retry_after(resets_at: datetime) -> int:
    return max(1, math.ceil((resets_at - timezone.now()).total_seconds()))


def billing_error_response(error: BillingError) -> HttpResponse:
    """A refusal from the services: its code, message and details (amounts as Amount objects)."""
    body = error.as_dict()
    for name in _AMOUNT_DETAILS & body.keys():
        if isinstance(body[name], int):
            body[name] = amount(body[name])
    headers = {}
    resets_at = getattr(error, "resets_at", None)
    if isinstance(resets_at, datetime):  # a daily cap or the monthly budget: retry when it resets
        headers["Retry-After"] = str(_retry_after(resets_at))
    return json_response(body, status=error.http_status, headers=headers)


# --- The request -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    caller: Caller
    workspace_id: int | None  # the workspace to act on (None for endpoints that need none)
    body: dict[str, Any] | None  # the parsed JSON object, for endpoints with a body


def _workspace_header(request: HttpRequest) -> int | None:
    raw = request.META.get(_WORKSPACE_META)
    if raw is None:
        return None
    workspace_id = id_parsed(raw.strip())
    if workspace_id is None:
        raise ApiError(422, "invalid_request", f"{WORKSPACE_HEADER} must be a workspace id.", field=WORKSPACE_HEADER)
    return workspace_id


def _authenticate(request: HttpRequest, named: int | None) -> Caller:
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    caller = credential_authenticate(token.strip(), workspace_id=named) if scheme.lower() == "bearer" else None
    if caller is None:
        raise ApiError(401, "unauthenticated", UNAUTHENTICATED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})
    return caller


def _body(request: HttpRequest, limit: int) -> dict[str, Any]:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > limit:
        raise ApiError(413, "payload_too_large", f"The body must be at most {limit:,} bytes of JSON.", max_bytes=limit)
    # Read the stream, not request.body: the limit is ours (the batch endpoint's is above
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE), and it was checked before reading.
    raw = request.read(length) if length else b""
    if not raw.strip():
        return {}
    try:
        # Floats parse as floats: no amount is read from one (quantities must be integers and
        # amounts decimal strings), and metadata may carry them. NaN and Infinity are not JSON.
        parsed = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", _TOO_DEEP) from None
    if not isinstance(parsed, dict):
        raise ApiError(422, "invalid_request", "The body must be a JSON object.", field="body")
    if _NUL_ESCAPE.search(raw):
        raise ApiError(422, "invalid_request", "Text may not contain the NUL character (\\u0000).", field="body")
    return parsed


_TOO_DEEP = "The body's JSON is nested too deeply."
# A \u0000 escape that is not itself an escaped backslash's text. PostgreSQL stores no NUL in
# text or jsonb, so such a string could only fail further down; one scan of the raw bytes in C.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def string_field(body: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ApiError(422, "invalid_request", f"{name} must be a string of 1–{max_length} characters.", field=name)
    return value


# --- The decorator -------------------------------------------------------------------------


def endpoint(
    method: str,
    path: str,
    *,
    operation_id: str,
    summary: str,
    description: str = "",
    tag: str,
    responses: Mapping[int, dict[str, Any]],
    errors: Mapping[int, list[str]] | None = None,
    retry_after: Iterable[int] = (),
    request_body: dict[str, Any] | None = None,
    max_body: str = "API_MAX_BODY_BYTES",
    parameters: list[dict[str, Any]] | None = None,
    workspace: bool = True,
    service_only: bool = False,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Make ``view(request, **kwargs)`` an API endpoint and register its OpenAPI operation.

    ``path`` is the OpenAPI path under /api/v1 (``/holds/{hold_id}/settle``); the URLconf
    routes it. ``responses`` are the successes (status: OpenAPI response); ``errors`` the
    error codes the view's own refusals can answer, by status; the shared ones (401, 429
    ``rate_limited``, and 400/413 with a body, 404/422 for the workspace, 403 for service
    only) are added here. ``retry_after``: statuses among ``errors`` that carry Retry-After.
    ``max_body`` names the setting that limits the body. ``workspace``: the view acts on a
    workspace (``request.api.workspace_id``). ``service_only``: API keys get 403.
    """
    method = method.upper()
    has_body = method in ("POST", "PUT", "PATCH")
    codes: dict[int, list[str]] = {status: list(names) for status, names in (errors or {}).items()}

    def add(status: int, code: str) -> None:
        codes.setdefault(status, [])
        if code not in codes[status]:
            codes[status].append(code)

    add(401, "unauthenticated")
    add(422, "invalid_request")  # every endpoint refuses query parameters it does not declare
    add(429, "rate_limited")
    if has_body:
        add(400, "invalid_json")
        add(413, "payload_too_large")
    if workspace:
        add(404, "not_found")
    if service_only:
        add(403, "forbidden")
    descriptions = {
        400: "The body is not JSON.",
        401: "No credential, or one that is unknown or revoked.",
        402: "Not enough credits.",
        403: "This credential may not do this.",
        404: "Not found (or not this credential's).",
        409: "Conflicts with an earlier request or the lead's state.",
        413: "The body is too large.",
        422: "Invalid input: `field` names it.",
        429: "A limit was reached: wait `Retry-After` seconds.",
    }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": ([{"$ref": "#/components/parameters/Workspace"}] if workspace else []) + list(parameters or []),
        "responses": {
            **{str(status): response for status, response in responses.items()},
            **{
                str(status): schema.error_response(
                    descriptions.get(status, "Refused."), names, retry_after=status == 429 or status in retry_after
                )
                for status, names in sorted(codes.items())
            },
        },
    }
    if description:
        operation["description"] = description
    if request_body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_body}}}
    schema.operation_register(path, method.lower(), operation)
    query_names = frozenset(p["name"] for p in parameters or () if p.get("in") == "query")

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # token-authenticated JSON: no cookies are read, so no cross-site request forgery
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                return error_json(405, "method_not_allowed", f"Use {method} here.", headers={"Allow": method})
            try:
                # A malformed header is reported after the credential is checked: 401 comes first.
                bad_header = named = None
                if workspace:
                    try:
                        named = _workspace_header(request)
                    except ApiError as error:
                        bad_header = error
                caller = _authenticate(request, named)
                if bad_header is not None:
                    raise bad_header
                if service_only and not caller.is_service:
                    raise ApiError(403, "forbidden", "Only Sigora's service tokens may do this.")
                for name, values in request.GET.lists():
                    if name not in query_names:  # a misspelt filter must not read as "no filter"
                        raise ApiError(422, "invalid_request", f"Unknown query parameter {name!r}.", field=name)
                    # PostgreSQL stores no NUL: refuse it here, not as a 500 below.
                    if any("\x00" in value for value in values):
                        raise ApiError(422, "invalid_request", f"{name} may not contain NUL characters.", field=name)
                wait = rate_limit_check(caller.rate_key)
                if wait is not None:
                    raise ApiError(
                        429,
                        "rate_limited",
                        f"Too many requests for this credential: try again in {wait} s.",
                        headers={"Retry-After": str(wait)},
                        retry_after=wait,
                    )
                if workspace:
                    if caller.is_service and named is None:
                        raise ApiError(
                            422,
                            "invalid_request",
                            f"Name the workspace in the {WORKSPACE_HEADER} header.",
                            field=WORKSPACE_HEADER,
                        )
                    if not caller.workspace_found:
                        raise ApiError(404, "not_found", NOT_FOUND_MESSAGE)
                body = _body(request, getattr(settings, max_body)) if has_body else None
                request.api = ApiCall(caller, caller.workspace_id if workspace else None, body)
                try:
                    return view(request, *args, **kwargs)
                except RecursionError:
                    if not has_body:
                        raise
                    # Parsed just under the interpreter's limit, the body can still be too deep
                    # for the services to encode again (metadata is stored as JSON).
                    raise ApiError(400, "invalid_json", _TOO_DEEP) from None
            except ApiError as error:
                return error_json(error.status, error.code, error.message, error.headers, **error.details)
            except BillingError as error:
                return billing_error_response(error)

        wrapped.api_operation = (path, method)
        return wrapped

    return decorate
