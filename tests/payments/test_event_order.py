"""No order of Stripe's events changes the books.

Each flow does what a buyer, Stripe and the bank do (against the offline double, with webhooks
held back), then hands its events to the real handlers in a random order, with copies, between
the buyer landing back from Checkout and the reconciliation job, as Stripe's retries and a
crowded network would. The wallets, ledger and purchases must come out exactly as they do when
the same events arrive in the order Stripe sent them, the books must balance after every
example, and the double must never hold two live subscriptions for one customer.

Most flows do all of Stripe's side first and then deliver, so every handler meets Stripe's final
state. Two flows need our side to act between Stripe's steps (the reset job falling back to Free
while a renewal is unpaid; an auto top-up declined, turned on again, then paid): those are built
afresh for each order and deliver each step's events, in any order, before the next step, as
they would arrive; their books are compared without Stripe's ids, which differ between builds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.credits import credits
from billing.errors import BillingError
from billing.models import LedgerEntry, Plan, Purchase, Subscription, Wallet, Workspace
from billing.selectors import ledger_audit
from billing.services import checkout_return, plan_checkout_start, topup_checkout_start
from billing.services.checkout import checkouts_reconcile
from billing.services.stripe_catalog import plan_lookup_key
from billing.services.stripe_events import EventFailed, stripe_event_process, stripe_event_record
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("EVENT_ORDER_EXAMPLES", "12"))  # random orders tried per flow
RETURN, RECONCILE = "buyer lands back", "reconciliation job"
LIVE = ("active", "trialing", "past_due", "unpaid", "incomplete")  # Stripe's statuses that still bill


@dataclass
class Phase:
    """Events Stripe sent, delivered in any order before the next phase's."""

    events: list[dict[str, Any]]


@dataclass
class Flow:
    workspace: Workspace
    phases: list[Phase] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)  # Checkout Sessions the buyer may land back from


class Recorder:
    """Runs Stripe-side steps and keeps the events each one made, which the double holds back."""

    def __init__(self, double):
        self.double = double
        self.seen = len(double.events)

    def step(self, action: Callable[[], Any]) -> list[dict[str, Any]]:
        action()
        events = self.double.events
        new, self.seen = events[self.seen :], len(events)
        return new


# --- Delivering --------------------------------------------------------------------------------


def deliver(event: dict[str, Any]) -> None:
    """What the webhook view does with a verified event; a failed handler is left for Stripe's retry."""
    row = stripe_event_record(event=event)
    with contextlib.suppress(EventFailed):
        stripe_event_process(event_id=row.event_id)


def lands_back(flow: Flow) -> None:
    for session_id in flow.sessions:
        with contextlib.suppress(BillingError):
            checkout_return(workspace=flow.workspace, session_id=session_id)


def run(flow: Flow, orders: list[list[Any]]) -> None:
    """Each phase's events in the given order (event indices, or the buyer and the job)."""
    for phase, order in zip(flow.phases, orders, strict=True):
        run_phase(flow, phase.events, order)


def run_phase(flow: Flow, events: list[dict[str, Any]], order: list[Any]) -> None:
    for step in order:
        if step == RETURN:
            lands_back(flow)
        elif step == RECONCILE:
            checkouts_reconcile()
        else:
            deliver(events[step])
    retry_failed()


def retry_failed() -> None:
    """Stripe keeps retrying an event its handler failed on (a few times here: none should stay failed)."""
    from billing.models import StripeEvent

    for _ in range(3):
        failed = list(StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).values_list("event_id", flat=True))
        for event_id in failed:
            with contextlib.suppress(EventFailed):
                stripe_event_process(event_id=event_id)


def books(workspace: Workspace) -> dict[str, Any]:
    """What must not depend on the order: the wallet, the ledger (as a multiset), the purchases, the plan."""
    wallet = Wallet.objects.get(workspace=workspace)
    workspace.refresh_from_db()
    ledger = sorted(
        LedgerEntry.objects.filter(workspace=workspace).values_list(
            "kind", "plan_delta", "topup_delta", "idempotency_key", "external_ref"
        )
    )
    purchases = list(
        Purchase.objects.filter(workspace=workspace)
        .order_by("id")
        .values_list(
            "kind", "status", "credits", "refunded_cents", "disputed_cents", "credits_reversed", "shortfall", "paid_at"
        )
    )
    subscription = list(
        Subscription.objects.filter(workspace=workspace).values_list(
            "plan__key", "seats", "status", "cancel_at_period_end", "current_period_end"
        )
    )
    return {
        "wallet": (wallet.plan_balance, wallet.topup_balance, wallet.period_start, wallet.period_end),
        "plan": (workspace.plan.key, workspace.seats),
        "ledger": ledger,
        "purchases": [(*p[:-1], p[-1] is not None) for p in purchases],
        "subscription": subscription,
    }


def assert_books_balanced() -> None:
    problems = [problem for chunk in ledger_audit() for problem in chunk.problems]
    assert problems == []


# --- Orders ------------------------------------------------------------------------------------


def shuffled(size: int) -> st.SearchStrategy[list[Any]]:
    """Every event once in any order, some again, with the buyer landing back and the job anywhere."""
    extras = st.lists(
        st.tuples(
            st.integers(0, size), st.sampled_from([*range(size), RETURN, RECONCILE]) if size else st.just(RETURN)
        ),
        max_size=max(3, size),
    )

    def interleave(args: tuple[list[int], list[tuple[int, Any]]]) -> list[Any]:
        order, inserts = list(args[0]), args[1]
        for position, step in inserts:
            order.insert(min(position, len(order)), step)
        return order

    return st.tuples(st.permutations(range(size)), extras).map(interleave)


def in_order(flow: Flow) -> list[list[Any]]:
    return [list(range(len(phase.events))) for phase in flow.phases]


def check_every_order(flow: Flow, double) -> None:
    """The books of the in-order delivery, then of random orders: all equal, all balanced."""
    start = transaction.savepoint()
    run(flow, in_order(flow))
    expected = books(flow.workspace)
    assert_books_balanced()
    transaction.savepoint_rollback(start)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.tuples(*(shuffled(len(phase.events)) for phase in flow.phases)))
    def any_order(orders):
        savepoint = transaction.savepoint()
        try:
            run(flow, list(orders))
            assert books(flow.workspace) == expected
            assert_books_balanced()
        finally:
            transaction.savepoint_rollback(savepoint)

    any_order()
    assert_one_live_subscription(double, flow.workspace)


def assert_one_live_subscription(double, workspace: Workspace) -> None:
    customer = Workspace.objects.get(pk=workspace.pk).stripe_customer_id
    if customer:
        subscriptions = [
            e["data"]["object"]["id"]
            for e in double.events
            if e["type"].startswith("customer.subscription.") and e["data"]["object"]["customer"] == customer
        ]
        live = {sid for sid in subscriptions if double.object(sid)["status"] in LIVE}
        assert len(live) <= 1, live


# --- The flows ---------------------------------------------------------------------------------


def buyer():
    owner = UserFactory()
    return owner, WorkspaceFactory(owner=owner)


def topup_bought(double, recorder: Recorder, pack: str = "100k") -> tuple[Flow, Purchase]:
    owner, workspace = buyer()
    purchase, _ = topup_checkout_start(
        workspace=workspace, pack_key=pack, user=owner, return_url="http://t/back", cancel_url="http://t/"
    )
    events = recorder.step(lambda: double.pay_checkout(purchase.stripe_checkout_session_id, card="success"))
    flow = Flow(workspace, [Phase(events)], sessions=[purchase.stripe_checkout_session_id])
    return flow, purchase


def payment_intent_of(double, session_id: str) -> str:
    return double.object(session_id)["payment_intent"]


def test_a_top_up_paid(stripe):
    flow, _ = topup_bought(stripe, Recorder(stripe))
    check_every_order(flow, stripe)


def test_a_top_up_paid_then_refunded_in_part_then_in_full(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder)
    intent = payment_intent_of(stripe, purchase.stripe_checkout_session_id)
    flow.phases[0].events += recorder.step(
        lambda: stripe_client.v1.refunds.create({"payment_intent": intent, "amount": purchase.amount_cents // 4})
    )
    flow.phases[0].events += recorder.step(lambda: stripe_client.v1.refunds.create({"payment_intent": intent}))
    check_every_order(flow, stripe)


def test_a_refund_before_fulfilment_takes_the_credits_back(stripe, stripe_client):
    """The issue's case: paid, refunded in full, and only then the events: the buyer keeps nothing."""
    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder, "50k")
    intent = payment_intent_of(stripe, purchase.stripe_checkout_session_id)
    flow.phases[0].events += recorder.step(lambda: stripe_client.v1.refunds.create({"payment_intent": intent}))
    refunded = [i for i, e in enumerate(flow.phases[0].events) if e["type"] == "charge.refunded"]
    completed = [i for i, e in enumerate(flow.phases[0].events) if e["type"] == "checkout.session.completed"]
    before = Wallet.objects.get(workspace=flow.workspace).topup_balance
    run(flow, [refunded + completed])
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.refunded_cents == purchase.amount_cents
    assert purchase.credits_reversed == purchase.credits
    assert Wallet.objects.get(workspace=flow.workspace).topup_balance == before
    assert_books_balanced()


def test_a_refund_with_no_webhooks_at_all_is_found_by_reconciliation(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder, "50k")
    intent = payment_intent_of(stripe, purchase.stripe_checkout_session_id)
    recorder.step(lambda: stripe_client.v1.refunds.create({"payment_intent": intent}))
    before = Wallet.objects.get(workspace=flow.workspace).topup_balance
    checkouts_reconcile()
    purchase.refresh_from_db()
    assert purchase.status == "paid" and purchase.credits_reversed == purchase.credits
    assert Wallet.objects.get(workspace=flow.workspace).topup_balance == before


# --- Subscriptions ------------------------------------------------------------------------------


def subscribed(double, recorder: Recorder, plan: str = "pro", seats: int = 1) -> Flow:
    """Free → ``plan`` through Checkout, its first invoice paid."""
    owner, workspace = buyer()
    purchase, _ = plan_checkout_start(
        workspace=workspace, plan_key=plan, seats=seats, user=owner, return_url="http://t/back", cancel_url="http://t/"
    )
    events = recorder.step(lambda: double.pay_checkout(purchase.stripe_checkout_session_id, card="success"))
    return Flow(workspace, [Phase(events)], sessions=[purchase.stripe_checkout_session_id])


def subscription_of(double, flow: Flow) -> str:
    return double.object(flow.sessions[0])["subscription"]


def subscription_change(stripe_client, double, flow: Flow, *, plan: str | None = None, seats: int | None = None):
    current = stripe_client.v1.subscriptions.retrieve(subscription_of(double, flow))
    item = {"id": current["items"]["data"][0]["id"]}
    if plan:
        item["price"] = stripe_client.v1.prices.list({"lookup_keys": [plan_lookup_key(plan)]}).data[0].id
    if seats:
        item["quantity"] = seats
    stripe_client.v1.subscriptions.update(current.id, {"items": [item], "proration_behavior": "always_invoice"})


def test_a_subscription_created_with_its_first_invoice_paid(stripe):
    check_every_order(subscribed(stripe, Recorder(stripe), "ultra"), stripe)


def test_a_renewal_paid(stripe):
    recorder = Recorder(stripe)
    flow = subscribed(stripe, recorder, "max")
    flow.phases[0].events += recorder.step(lambda: stripe.renew(subscription_of(stripe, flow)))
    check_every_order(flow, stripe)


def test_seats_added_mid_period(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow = subscribed(stripe, recorder, "pro", seats=2)
    flow.phases[0].events += recorder.step(lambda: stripe.advance(5 * 86400))
    flow.phases[0].events += recorder.step(lambda: subscription_change(stripe_client, stripe, flow, seats=4))
    check_every_order(flow, stripe)


def test_an_upgrade_mid_period(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow = subscribed(stripe, recorder, "pro")
    flow.phases[0].events += recorder.step(lambda: stripe.advance(10 * 86400))
    flow.phases[0].events += recorder.step(lambda: subscription_change(stripe_client, stripe, flow, plan="max"))
    check_every_order(flow, stripe)


def test_a_downgrade_at_the_next_period(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow = subscribed(stripe, recorder, "ultra")
    flow.phases[0].events += recorder.step(lambda: subscription_change(stripe_client, stripe, flow, plan="pro"))
    flow.phases[0].events += recorder.step(lambda: stripe.renew(subscription_of(stripe, flow)))
    check_every_order(flow, stripe)


def test_a_cancellation_at_the_period_end(stripe, stripe_client):
    recorder = Recorder(stripe)
    flow = subscribed(stripe, recorder, "pro")
    subscription = subscription_of(stripe, flow)
    flow.phases[0].events += recorder.step(
        lambda: stripe_client.v1.subscriptions.update(subscription, {"cancel_at_period_end": True})
    )
    flow.phases[0].events += recorder.step(lambda: stripe.renew(subscription))
    check_every_order(flow, stripe)


# --- Disputes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("won", [True, False], ids=["won", "lost"])
def test_a_dispute_opened_then_won_or_lost(stripe, won):
    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder)
    charge = stripe.object(payment_intent_of(stripe, purchase.stripe_checkout_session_id))["latest_charge"]
    disputes = []
    flow.phases[0].events += recorder.step(lambda: disputes.append(stripe.dispute(charge)))
    flow.phases[0].events += recorder.step(lambda: stripe.close_dispute(disputes[0]["id"], won=won))
    check_every_order(flow, stripe)
    run(flow, in_order(flow))
    purchase.refresh_from_db()
    assert purchase.credits_reversed == (0 if won else purchase.credits)


def test_a_dispute_won_after_its_credits_were_taken_gives_them_back(stripe):
    """Delivered as it happens: the dispute takes the pack's credits, the win gives them back."""
    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder)
    charge = stripe.object(payment_intent_of(stripe, purchase.stripe_checkout_session_id))["latest_charge"]
    disputes = []
    flow.phases[0].events += recorder.step(lambda: disputes.append(stripe.dispute(charge)))
    run(flow, in_order(flow))
    for event in recorder.step(lambda: stripe.close_dispute(disputes[0]["id"], won=True)):
        deliver(event)
    refunds = LedgerEntry.objects.filter(workspace=flow.workspace, kind="refund").order_by("id")
    assert list(refunds.values_list("topup_delta", flat=True)) == [-purchase.credits, purchase.credits]
    assert {entry.external_ref for entry in refunds} == {disputes[0]["id"]}
    purchase.refresh_from_db()
    assert (purchase.credits_reversed, purchase.disputed_cents, purchase.shortfall) == (0, 0, 0)
    assert_books_balanced()


def test_a_dispute_won_forgives_the_shortfall_before_it_gives_credits_back(stripe):
    from tests.conftest import fund

    recorder = Recorder(stripe)
    flow, purchase = topup_bought(stripe, recorder)  # 100,000 credits
    run(flow, in_order(flow))
    fund(flow.workspace, plan=0, topup=10_000)  # 90,000 of them spent
    charge = stripe.object(payment_intent_of(stripe, purchase.stripe_checkout_session_id))["latest_charge"]
    disputes = []
    for event in recorder.step(lambda: disputes.append(stripe.dispute(charge))):
        deliver(event)
    purchase.refresh_from_db()
    assert purchase.shortfall == purchase.credits - credits(10_000)
    for event in recorder.step(lambda: stripe.close_dispute(disputes[0]["id"], won=True)):
        deliver(event)
    refunds = LedgerEntry.objects.filter(workspace=flow.workspace, kind="refund").order_by("id")
    assert list(refunds.values_list("topup_delta", flat=True)) == [-credits(10_000), credits(10_000)]
    purchase.refresh_from_db()
    assert (purchase.credits_reversed, purchase.shortfall) == (0, 0)
    assert Wallet.objects.get(workspace=flow.workspace).topup_balance == credits(10_000)
    assert_books_balanced()


# --- Flows whose Stripe side moves on between deliveries ------------------------------------------


def normalized_books(workspace: Workspace) -> dict[str, Any]:
    """The books without what differs between two builds of one flow: Stripe's ids, keys, times."""
    found = books(workspace)
    return {
        "wallet": found["wallet"][:2],
        "plan": found["plan"],
        "ledger": sorted(row[:3] for row in found["ledger"]),
        "purchases": found["purchases"],
        "subscription": [row[:4] for row in found["subscription"]],
    }


def check_every_order_as_it_happens(double, build: Callable[[Recorder], tuple[Flow, list[Callable[[], Any]]]]):
    """Build the flow afresh for each order; each step's events arrive (in that order) before the next step."""

    def once(order_of: Callable[[int], list[Any]]) -> dict[str, Any]:
        savepoint = transaction.savepoint()
        try:
            recorder = Recorder(double)
            flow, steps = build(recorder)
            for step in steps:
                events = recorder.step(step)
                run_phase(flow, events, order_of(len(events)))
            assert_books_balanced()
            assert_one_live_subscription(double, flow.workspace)
            return normalized_books(flow.workspace)
        finally:
            transaction.savepoint_rollback(savepoint)

    expected = once(lambda size: list(range(size)))

    @settings(
        max_examples=max(3, EXAMPLES // 3),  # each example buys, renews and pays again: seconds, not milliseconds
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def any_order(data):
        assert once(lambda size: data.draw(shuffled(size))) == expected

    any_order()
    return expected


def subscription_checkout(plan: str) -> tuple[Flow, Purchase]:
    """A buyer on Free starting a Checkout for ``plan``; nothing paid yet."""
    owner, workspace = buyer()
    purchase, _ = plan_checkout_start(
        workspace=workspace, plan_key=plan, seats=1, user=owner, return_url="http://t/back", cancel_url="http://t/"
    )
    return Flow(workspace, sessions=[purchase.stripe_checkout_session_id]), purchase


def test_a_renewal_failed_then_paid_after_the_free_fallback(stripe, stripe_client):
    from billing.services.resets import FALLBACK_AFTER, periods_reset

    def build(recorder: Recorder):
        flow, purchase = subscription_checkout("max")
        unpaid = []

        def subscribed():
            stripe.pay_checkout(purchase.stripe_checkout_session_id, card="success")

        def renewal_declined():
            subscription = subscription_of(stripe, flow)
            stripe.set_card(stripe.object(subscription)["customer"], "decline")
            stripe.renew(subscription)
            unpaid.append(stripe.object(subscription)["latest_invoice"])

        def three_days_unpaid():  # our side: the beat's reset pass, three days into the unpaid period
            stripe.advance(int(FALLBACK_AFTER.total_seconds()) + 60)
            periods_reset(now=datetime.fromtimestamp(stripe.now(), tz=UTC), workspace_ids=[flow.workspace.pk])

        def paid_at_last():
            stripe.set_card(stripe.object(subscription_of(stripe, flow))["customer"], "success")
            stripe_client.v1.invoices.pay(unpaid[0])

        return flow, [subscribed, renewal_declined, three_days_unpaid, paid_at_last]

    after = check_every_order_as_it_happens(stripe, build)
    assert after["plan"] == ("max", 1) and after["subscription"][0][2] == "active"
    assert after["wallet"][0] == Plan.objects.get(key="max").allowance
    fell_back = [row for row in after["ledger"] if row[0] == "plan_grant" and row[1] == credits(10_000)]
    assert len(fell_back) == 2  # Free at the start, and Free again while the renewal was unpaid


def test_an_auto_top_up_declined_then_paid(stripe):
    from billing.services.auto_topup import auto_topup_set, auto_topups_run

    def build(recorder: Recorder):
        flow, purchase = topup_bought(stripe, recorder, "50k")  # the card is saved at this checkout
        owner = purchase.created_by
        flow.phases = []

        def card_saved():
            checkout_return(workspace=flow.workspace, session_id=purchase.stripe_checkout_session_id)

        def run_with(card: str):  # the owner turns it on with this card; the beat finds the balance low
            workspace = Workspace.objects.get(pk=flow.workspace.pk)
            stripe.set_card(workspace.stripe_customer_id, card)
            auto_topup_set(
                workspace=workspace,
                actor=owner,
                enabled=True,
                threshold=credits(200_000),
                pack_key="100k",
                monthly_limit=3,
            )
            auto_topups_run()

        def declined():  # the bank says no: it turns itself off
            run_with("decline")

        def turned_on_again_and_paid():
            run_with("success")

        return flow, [card_saved, declined, turned_on_again_and_paid]

    after = check_every_order_as_it_happens(stripe, build)
    statuses = [(row[0], row[1]) for row in after["purchases"]]
    assert statuses == [("top_up", "paid"), ("auto_top_up", "failed"), ("auto_top_up", "paid")]
    assert after["wallet"][1] == credits(50_000 + 100_000)
