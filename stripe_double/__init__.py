"""An offline stand-in for Stripe that the real ``stripe`` library talks to unmodified.

It serves Stripe's ``/v1`` wire protocol (form-encoded requests, JSON answers, Stripe's errors,
idempotency keys, list pagination, ``expand[]``) for the objects Sigora uses, hosted test pages for
Checkout, 3-D Secure, the Billing Portal, receipts and invoices, and delivers signed webhooks.
Tests steer it through the methods below (or ``POST /_double/<method>`` with the API key).

A development tool beside the project, not part of the billing app: it imports nothing of ``billing`` and no Django.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import checkout, invoices, payments, refunds, subscriptions
from .api import Api
from .customers import check_behaviour, customer_set_card
from .encoding import Params
from .errors import StripeError
from .server import DoubleServer
from .store import API_VERSION, Clock, Obj, Store
from .webhooks import Delivery, WebhookSender, sign

__all__ = ["API_VERSION", "Delivery", "StripeDouble", "StripeError", "sign", "start"]

_CONTROL_READS = ("now", "deliveries", "events", "scheduled")
_CONTROL_ACTIONS = (
    "pay_checkout",
    "complete_authentication",
    "settle_delayed",
    "renew",
    "dispute",
    "close_dispute",
    "set_card",
    "redeliver",
    "hold_deliveries",
    "release_deliveries",
    "advance",
    "deliver_due",
    "wait_for_deliveries",
)


class StripeDouble:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "sk_test_double",
        webhook_url: str | None = None,
        webhook_secret: str = "whsec_test",
        retry_delays: tuple[int, ...] = (1, 5, 30),
        clock: Callable[[], float] | int | None = None,
        *,
        verbose: bool = False,
    ) -> None:
        """``clock``: None for real time, an int to freeze the clock at that unix time, or a callable."""
        self.host = host
        self.port = port
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.verbose = verbose
        self.store = Store(Clock(clock))
        self.store.webhook_endpoints = lambda: 1 if self.webhook_url else 0
        for module in (refunds, invoices, subscriptions, checkout):
            module.register(self.store)
        self.api = Api(self.store, api_key)
        self.sender = WebhookSender(
            self.store, secret=webhook_secret, retry_delays=retry_delays, url=lambda: self.webhook_url
        )
        self._server: DoubleServer | None = None

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> StripeDouble:
        self._server = DoubleServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self.store.base_url = self.url
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-double", daemon=True
        ).start()
        self.sender.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.sender.stop()

    def __enter__(self) -> StripeDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def webhook_secret(self) -> str:
        return self.sender.secret

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # --- the clock and deliveries -------------------------------------------------------------------

    def now(self) -> int:
        return self.store.now()

    def advance(self, seconds: int) -> int:
        """Move the clock on: open Checkout Sessions past ``expires_at`` expire, retries come due."""
        self._act(lambda: (self.store.clock.advance(int(seconds)), checkout.sessions_expire_due(self.store)))
        self.sender.wake()
        return self.now()

    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.sender.deliveries)

    @property
    def events(self) -> list[Obj]:
        with self.store.lock:
            return [self.store.render(event) for event in self.store.events]

    def scheduled(self) -> list[tuple[str, int, int]]:
        """Deliveries waiting: (event id, attempt number, due time on the double's clock)."""
        return self.sender.scheduled()

    def wait_for_deliveries(self, timeout: float = 10.0) -> None:
        self.sender.wait(timeout)

    def deliver_due(self, force: bool = False) -> None:
        """Send the retries that are due (all scheduled ones if ``force``) and wait for them."""
        if force:
            self.sender.force_due()
        self.sender.wake()
        self.sender.wait()

    def hold_deliveries(self) -> None:
        self.sender.hold()

    def release_deliveries(self, order: str = "as_is") -> None:
        self.sender.release(order)

    def redeliver(self, event_id: str, times: int = 1, concurrently: bool = False) -> list[int | str]:
        """Deliver an event again ``times`` times (all at once from threads if ``concurrently``)."""
        with self.store.lock:
            event = self.store.get(event_id, "event")
        return self.sender.redeliver(event, times=int(times), concurrently=bool(concurrently))

    # --- what customers and banks do ----------------------------------------------------------------

    def pay_checkout(self, session_id: str, card: str = "success") -> Obj:
        """Pay a Checkout Session as the hosted page's buttons do: success, decline, authenticate, delayed."""
        check_behaviour(card)

        def pay() -> Obj:
            session = self.store.get(session_id, "checkout.session", label="checkout.session")
            checkout.session_pay(self.store, session, card)
            return session

        return self._act(pay)

    def complete_authentication(self, object_id: str, succeed: bool = True) -> Obj:
        """Finish 3-D Secure for a Checkout Session (``cs_…``) or a PaymentIntent (``pi_…``)."""
        return self._act(lambda: self._intent_then(object_id, payments.intent_authenticate, succeed))

    def settle_delayed(self, object_id: str, succeed: bool = True) -> Obj:
        """A delayed (bank debit) payment of a Checkout Session or PaymentIntent clears or fails."""
        return self._act(lambda: self._intent_then(object_id, payments.intent_settle, succeed))

    def _intent_then(self, object_id: str, step: Callable[..., Obj], succeed: bool) -> Obj:
        if object_id.startswith("cs_"):
            session = self.store.get(object_id, "checkout.session", label="checkout.session")
            step(self.store, checkout.session_intent(self.store, session), succeed=bool(succeed))
            return session
        return step(
            self.store, self.store.get(object_id, "payment_intent", label="payment_intent"), succeed=bool(succeed)
        )

    def renew(self, subscription_id: str, card: str | None = None) -> Obj:
        """Roll a subscription into its next period, moving the clock to the period's end first.

        ``card`` makes this one charge behave as that test card; ``set_card`` changes the card for good.
        """
        if card is not None:
            check_behaviour(card)
        with self.store.lock:
            subscription = self.store.get(subscription_id, "subscription")
            end = subscription["items"]["data"][0]["current_period_end"]
        if end > self.now():
            self.advance(end - self.now())
        return self._act(lambda: subscriptions.subscription_renew(self.store, subscription, behaviour=card))

    def dispute(self, charge_id: str) -> Obj:
        return self._act(lambda: refunds.dispute_open(self.store, charge_id))

    def close_dispute(self, dispute_id: str, won: bool = True) -> Obj:
        """The bank rules on a dispute: ``charge.dispute.closed`` with status ``won`` or ``lost``."""
        return self._act(lambda: refunds.dispute_close(self.store, dispute_id, won=bool(won)))

    def set_card(self, customer_id: str, card: str) -> list[Obj]:
        """Make the customer's saved card(s) succeed, decline, need authentication or pay by delayed debit."""
        return self._act(lambda: customer_set_card(self.store, customer_id, card))

    def object(self, object_id: str) -> Obj:
        """Any stored object by id, as the API would show it."""
        with self.store.lock:
            obj = self.store.find(object_id)
            if obj is None:
                raise KeyError(object_id)
            return self.store.render(obj)

    def _act(self, action: Callable[[], Any]) -> Any:
        """Run a control action under the lock; its events go out once it is done."""
        with self.store.lock:
            try:
                result = action()
                shown = _shown(self.store, result)
            finally:
                events = self.store.take_outbox()
        self.sender.enqueue(events)
        return shown

    # --- the HTTP control surface ---------------------------------------------------------------------

    def control(self, method: str, name: str, arguments: Params) -> tuple[int, Any]:
        """``GET /_double/<read>`` or ``POST /_double/<action>`` with the method's keyword arguments."""
        if method == "GET" and name in _CONTROL_READS:
            value = getattr(self, name)
            value = value() if callable(value) else value
            return 200, [item._asdict() for item in value] if name == "deliveries" else value
        if method != "POST" or name not in _CONTROL_ACTIONS:
            return 404, {"error": {"type": "invalid_request_error", "message": f"No control named {name!r}."}}
        try:
            result = getattr(self, name)(**{key: _typed(value) for key, value in arguments.items()})
        except StripeError as error:
            return error.status, error.body()
        except (TypeError, ValueError, TimeoutError) as error:
            return 400, {"error": {"type": "invalid_request_error", "message": str(error)}}
        return 200, {"result": result}


def _shown(store: Store, result: Any) -> Any:
    if isinstance(result, dict) and "object" in result:
        return store.render(result)
    if isinstance(result, list):
        return [_shown(store, item) for item in result]
    return result


def _typed(value: Any) -> Any:
    """Form values are text: read "true"/"false" and whole numbers as what they say."""
    if value in ("true", "false"):
        return value == "true"
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def start(**options: Any) -> StripeDouble:
    """Make and start a double: ``start(port=12111, webhook_url=...)``."""
    return StripeDouble(**options).start()
