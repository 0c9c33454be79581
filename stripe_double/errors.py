"""Stripe's error bodies and status codes, as the real ``stripe`` library reads them."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API refusal: turned into ``{"error": {...}}`` with Stripe's status code.

    ``saved`` says whether an idempotent request's answer is kept for replay: Stripe keeps the
    result of every request that started executing, but not one whose parameters failed validation.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.saved = saved
        self.error: dict[str, Any] = {"type": error_type, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param
        self.error.update(extra)

    @property
    def message(self) -> str:
        return self.error["message"]

    def body(self) -> dict[str, Any]:
        return {"error": dict(self.error)}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 for parameters that do not validate (not saved for idempotent replay)."""
    return StripeError(400, "invalid_request_error", message, code=code, param=param, saved=False)


def refused(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 for a valid request the object's state refuses (saved for idempotent replay)."""
    return StripeError(400, "invalid_request_error", message, code=code, param=param)


def missing(param: str) -> StripeError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def not_found(kind: str, object_id: str, *, param: str = "id") -> StripeError:
    return StripeError(
        404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def unauthorized(message: str) -> StripeError:
    return StripeError(401, "invalid_request_error", message, saved=False)
