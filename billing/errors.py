"""Refusals: one base class, a subclass per reason, each with a person's message and a stable code.

Views render ``message``; the HTTP API returns ``{"code": ..., "message": ...}`` with
``http_status``. A refusal never leaves anything written to a wallet or the ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class BillingError(Exception):
    code = "billing_error"
    http_status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class InvalidRequest(BillingError):
    """Bad input: names the field that was wrong."""

    code = "invalid_request"
    http_status = 422

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class NotPermitted(BillingError):
    """The person may not do this (a role or a staff permission is missing). Not Django's PermissionDenied:
    a refusal like the others, with a message and a code, that views and the API turn into a 403."""

    code = "permission_denied"
    http_status = 403


class EmailUnverified(BillingError):
    """A new sign-up's workspace whose owner has not verified their address yet: nothing is charged or held."""

    code = "email_unverified"
    http_status = 403


class UnknownAction(BillingError):
    code = "unknown_action"
    http_status = 422


class InsufficientCredits(BillingError):
    code = "insufficient_credits"
    http_status = 402


class DailyCapReached(BillingError):
    code = "daily_cap_reached"
    http_status = 429

    def __init__(self, message: str, *, specialist: str, resets_at: datetime, **details: Any) -> None:
        super().__init__(message, specialist=specialist, resets_at=resets_at.isoformat(), **details)
        self.specialist = specialist
        self.resets_at = resets_at


class SequencePaused(BillingError):
    code = "sequence_paused"
    http_status = 409


class IdempotencyConflict(BillingError):
    code = "idempotency_conflict"
    http_status = 409


class MonthlyBudgetReached(BillingError):
    """The workspace's monthly spend guardrail. Refused like a daily cap (the API's code and status)."""

    code = "daily_cap_reached"
    http_status = 429

    def __init__(self, message: str, *, resets_at: datetime, **details: Any) -> None:
        super().__init__(message, resets_at=resets_at.isoformat(), limit="monthly_budget", **details)
        self.resets_at = resets_at


class HoldNotFound(BillingError):
    """No hold with that id in this workspace (a hold of another workspace is not found either)."""

    code = "hold_not_found"
    http_status = 404


class HoldSettled(BillingError):
    """The hold was already settled: it cannot be released, or settled again with different usage."""

    code = "hold_settled"
    http_status = 409


class HoldReleased(BillingError):
    """The hold was released: there is nothing left to settle against."""

    code = "hold_released"
    http_status = 409


class TooManyHolds(BillingError):
    """The workspace already has as many active holds as it may (settle or release some first)."""

    code = "too_many_holds"
    http_status = 409


class FulfilmentMismatch(BillingError):
    """Stripe reports a payment that does not match what was asked for: nothing is granted."""

    code = "fulfilment_mismatch"
    http_status = 409


# --- Stripe's refusals (raised by billing.stripe_gateway) ----------------------------------------


class PaymentsUnavailable(BillingError):
    """No Stripe key is configured: buying is switched off, nothing else is."""

    code = "payments_unavailable"
    http_status = 503


class PaymentFailed(BillingError):
    """Stripe refused a payment (a declined card, one that needs its owner to authenticate)."""

    code = "payment_failed"
    http_status = 402

    def __init__(self, message: str, *, decline_code: str = "", payment_intent: str = "", **details: Any) -> None:
        super().__init__(message, decline_code=decline_code, payment_intent=payment_intent, **details)
        self.decline_code = decline_code
        self.payment_intent = payment_intent

    @property
    def needs_authentication(self) -> bool:
        return self.decline_code == "authentication_required"


class StripeUnavailable(BillingError):
    """Stripe could not be reached or answered with an error: try again."""

    code = "stripe_unavailable"
    http_status = 502


class MissingInStripe(BillingError):
    """Stripe does not know an id we sent (deleted in the dashboard, or another account's)."""

    code = "missing_in_stripe"
    http_status = 404

    def __init__(self, message: str, *, param: str = "", **details: Any) -> None:
        super().__init__(message, param=param, **details)
        self.param = param


class SignatureInvalid(BillingError):
    """A webhook's signature does not verify (or is too old): the body is not from Stripe."""

    code = "signature_invalid"
    http_status = 400
