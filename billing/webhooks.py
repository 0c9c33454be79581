"""``/stripe/webhook/``: Stripe's calls in. Verify, store once, handle once, answer.

The signature is checked on the raw body before anything is parsed or written; a bad or stale
one answers 400 and leaves no trace. A handler failure answers 500 so Stripe retries; event
types nobody handles answer 200.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_gateway
from billing.errors import PaymentsUnavailable, SignatureInvalid
from billing.services.stripe_events import EventFailed, stripe_event_process, stripe_event_record

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe cannot send a CSRF token; the signature is the proof of origin instead
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        event = stripe_gateway.event_construct(request.body, request.headers.get("Stripe-Signature"))
    except SignatureInvalid as exc:
        logger.warning("stripe webhook refused: %s", exc.message)
        return JsonResponse({"code": exc.code, "message": exc.message}, status=400)
    except PaymentsUnavailable as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=503)
    try:
        row = stripe_event_record(event=event)
        row = stripe_event_process(event_id=row.event_id)
    except EventFailed as exc:
        return JsonResponse({"code": "handler_failed", "message": str(exc), "event": event["id"]}, status=500)
    except (OperationalError, InterfaceError) as exc:  # PostgreSQL or PgBouncer restarting: Stripe retries
        logger.warning("stripe webhook %s: database unavailable (%s)", event["id"], exc)
        return JsonResponse({"code": "database_unavailable", "message": "Retry later."}, status=503)
    return JsonResponse({"received": True, "event": row.event_id, "status": row.status})
