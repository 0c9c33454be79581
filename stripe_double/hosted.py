"""Routing and actions of the hosted pages (no API key: the buyer's browser reaches them)."""

from __future__ import annotations

import re
import sys
import traceback
from urllib.parse import parse_qs, quote

from . import checkout, pages, payments
from .api import Response
from .customers import check_behaviour
from .errors import StripeError
from .portal import portal_change_plan, portal_flow_confirm, portal_set_cancel
from .store import Obj, Store

_PATH = re.compile(r"^/(checkout|portal|receipts|invoices)/([^/]+)(?:/([a-z_]+))?/?$")


def handle(store: Store, method: str, path: str, query: str, body: str) -> Response:
    if path in ("", "/") and method == "GET":
        return _html(
            200, pages.message_page("Offline Stripe double", "This server stands in for Stripe's API in tests.")
        )
    match = _PATH.match(path)
    if not match:
        return _html(404, pages.message_page("Not found", f"Nothing is served at {path}."))
    kind, object_id, action = match.groups()
    form = {key: values[0] for key, values in parse_qs(body if method == "POST" else query).items()}
    with store.lock:
        try:
            response = _route(store, method, kind, object_id, action, form)
        except StripeError as error:
            response = _html(error.status, pages.message_page("Something went wrong", error.message))
        except Exception:  # a fault of the double itself: say so on the page, keep serving
            traceback.print_exc(file=sys.stderr)
            response = _html(500, pages.message_page("Something went wrong", "The offline Stripe double failed."))
        finally:
            events = store.take_outbox()
    response.events = events
    return response


def _route(store: Store, method: str, kind: str, object_id: str, action: str | None, form: dict[str, str]) -> Response:
    if kind == "checkout":
        session = store.get(object_id, "checkout.session", label="checkout.session")
        checkout.sessions_expire_due(store)
        return _checkout(store, method, session, action, form)
    if kind == "portal":
        portal = store.get(object_id, "billing_portal.session", label="billing portal session")
        return _portal(store, method, portal, action, form)
    if method != "GET" or action:
        return _html(405, pages.message_page("Not allowed", "This page is read-only."))
    if kind == "receipts":
        return _html(200, pages.receipt_page(store, store.get(object_id, "charge")))
    return _html(200, pages.invoice_page(store.get(object_id, "invoice")))


def _checkout(store: Store, method: str, session: Obj, action: str | None, form: dict[str, str]) -> Response:
    base = f"/checkout/{session['id']}"
    if session["status"] != "open":
        return _html(200 if method == "GET" else 409, pages.checkout_closed_page(session))
    if method == "GET" and action is None:
        return _html(200, pages.checkout_page(store, session, form.get("error")))
    if method == "POST" and action == "pay":
        try:
            card = check_behaviour(form.get("card", ""))
        except ValueError as error:
            return _html(400, pages.message_page("Unknown card", str(error), (base, "Back to checkout")))
        outcome = checkout.session_pay(store, session, card)
        return _redirect(_after(session, outcome))
    intent = store.find(session["_intent"])
    if action == "authenticate" and intent is not None and intent["status"] == "requires_action":
        if method == "GET":
            return _html(200, pages.authenticate_page(session, intent))
        payments.intent_authenticate(store, intent, succeed=form.get("result") == "complete")
        return _redirect(_after(session, "succeeded" if intent["status"] == "succeeded" else "failed_authentication"))
    return _redirect(base)


def _after(session: Obj, outcome: str) -> str:
    base = f"/checkout/{session['id']}"
    return {
        "succeeded": pages.success_url(session),
        "processing": pages.success_url(session),
        "requires_action": f"{base}/authenticate",
        "failed": f"{base}?error=declined",
        "failed_authentication": f"{base}?error=authentication_failed",
    }[outcome]


def _portal(store: Store, method: str, portal: Obj, action: str | None, form: dict[str, str]) -> Response:
    base = f"/portal/{portal['id']}"
    flow = portal["flow"]
    if method == "GET" and action is None:
        if flow is not None and not portal["_flow_done"]:  # a deep link opens on its flow's page
            return _html(200, pages.portal_confirm_page(store, portal))
        return _html(200, pages.portal_page(store, portal, form.get("message")))
    if action == "confirm":
        return _portal_confirm(store, method, portal)
    if action == "confirmed" and method == "GET" and flow is not None:
        message = flow["after_completion"]["hosted_confirmation"] or {}
        text = message.get("custom_message") or "Your plan has been updated."
        return _html(200, pages.message_page("Plan updated", text, (portal["return_url"] or "", "Return")))
    if method != "POST" or action not in ("update", "cancel", "reactivate"):
        return _redirect(base)
    subscription_id = form.get("subscription", "")
    try:
        if action == "update":
            quantity = int(form.get("quantity") or "1")
            if quantity < 1:
                raise ValueError("at least one seat")
            portal_change_plan(store, portal, subscription_id, form.get("price", ""), quantity)
            message = "Your plan has been updated."
        else:
            portal_set_cancel(store, portal, subscription_id, cancel=action == "cancel")
            message = (
                "Your plan will be canceled at the end of the period." if action == "cancel" else "Your plan renews."
            )
    except (StripeError, ValueError) as error:
        message = f"Error: {error.message if isinstance(error, StripeError) else error}"
    return _redirect(f"{base}?message={quote(message)}")


def _portal_confirm(store: Store, method: str, portal: Obj) -> Response:
    """Confirm the flow's change, then go where ``after_completion`` says."""
    base = f"/portal/{portal['id']}"
    if method != "POST":
        return _redirect(base)
    try:
        portal_flow_confirm(store, portal)
    except StripeError as error:
        return _redirect(f"{base}?message={quote(f'Error: {error.message}')}")
    after = portal["flow"]["after_completion"]
    if after["type"] == "redirect":
        return _redirect(after["redirect"]["return_url"])
    if after["type"] == "hosted_confirmation":
        return _redirect(f"{base}/confirmed")
    return _redirect(f"{base}?message={quote('Your plan has been updated.')}")


def _html(status: int, html: str) -> Response:
    return Response(status, html.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _redirect(location: str) -> Response:
    return Response(303, b"", {"Location": location})
