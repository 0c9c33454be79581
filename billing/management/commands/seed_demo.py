"""Create the demo: an owner, a workspace on the Max plan and a month of realistic usage.

``--subscribe`` (``make run`` adds it once the offline Stripe double answers) also makes the demo
workspace a subscriber there, as a customer becomes one: Checkout for Max, paid with the test card on the
double's checkout page, fulfilled by the services from what Stripe then says (the subscription, its paid
invoice, the card). The double keeps its state in memory, so a restarted one has forgotten the
subscription: it is recorded as ended and the demo subscribes again.
"""

from __future__ import annotations

import base64
import http.client
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing import selectors, stripe_gateway
from billing.credits import credits, format_cents, format_credits
from billing.models import LedgerEntry, Membership, TopUpPack, Workspace
from billing.services import (
    BillingError,
    address_verify,
    cap_set,
    checkout_return,
    entry_post,
    plan_checkout_start,
    record_reply,
    usage_event,
    usage_record,
    wallet_lock,
    workspace_create,
)
from billing.services.subscriptions import subscription_lost
from billing.services.two_factor import two_factor_app_with_key

DEMO_WORKSPACE = "Acme Growth"
DEMO_OWNER = ("demo@sigora.test", "sigora-demo")
DEMO_TEAMMATE = ("ana@sigora.test", "sigora-demo")
DEMO_STAFF = ("admin@sigora.test", "sigora-admin")
# The demo staff user's authenticator-app secret: fixed, so a developer adds it to an app once. Local only,
# like the passwords (this command refuses to run with DEBUG off); a real staff user enrols their own.
DEMO_STAFF_TOTP_KEY = b"sigora-demo-staff-ok"
DEMO_DAYS = 26  # the workspace's first period started this many days ago


@dataclass(frozen=True)
class DemoEvent:
    """One metered call of the demo month."""

    at: datetime
    action: str
    quantity: int
    specialist: str | None
    lead: str = ""


# How a busy solo founder's workspace spends a day: (action, calls per day, quantity range,
# specialist for AI calls). Quantities are tokens for Claude, pages for a search.
DAILY_MIX = [
    ("claude-haiku", 24, (200, 1_500), "outreach"),
    ("claude-haiku", 10, (200, 1_200), "publishing"),
    ("claude-sonnet", 3, (600, 2_500), "sourcing"),
    ("claude-sonnet", 2, (800, 3_000), "publishing"),
    ("claude-opus", 0.4, (1_000, 3_000), "other"),
    ("crustdata-search", 1.5, (1, 3), None),
    ("crustdata-enrich", 0.5, (1, 1), None),
    ("linkedin-connect", 0.9, (1, 1), None),
    ("linkedin-dm", 0.9, (1, 1), None),
    ("gmail-send", 3, (1, 1), None),
    ("social-publish", 1, (1, 1), None),
    ("social-engage", 2, (1, 1), None),
    ("computer-use", 0.6, (1, 1), None),
    ("transcript-summary", 0.3, (1, 1), None),
]
SEQUENCE_STEPS = {"linkedin-connect", "linkedin-dm", "gmail-send"}
# Leads that write back during the month: their later follow-ups are skipped, not charged.
REPLIES = {  # lead: day of the month it replied
    "lead-003": 3,
    "lead-007": 5,
    "lead-011": 6,
    "lead-019": 9,
    "lead-024": 12,
    "lead-028": 14,
    "lead-033": 16,
}
DAILY_CAPS = {"outreach": 12_000, "sourcing": 15_000}  # credits per day


def demo_events(*, start: datetime, days: int, seed: int = 7) -> list[DemoEvent]:
    """The demo month's calls, in time order, the same for the same seed."""
    rng = random.Random(seed)
    events = []
    for day in range(days):
        midnight = (start + timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        weekend = midnight.weekday() >= 5
        for action, per_day, (low, high), specialist in DAILY_MIX:
            rate = per_day * (0.3 if weekend else 1.0)
            calls = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
            for _ in range(calls):
                # Working hours on the workspace's clock, with a little evening work.
                at = midnight + timedelta(hours=rng.triangular(8, 22, 11), minutes=rng.randint(0, 59))
                lead = f"lead-{rng.randint(1, 36):03d}" if action in SEQUENCE_STEPS else ""
                events.append(DemoEvent(at, action, rng.randint(low, high), specialist, lead))
    return sorted(events, key=lambda event: event.at)


class Command(BaseCommand):
    help = "Create the demo owner, workspace and a month of usage (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Seed even with DEBUG off (never in production).")
        parser.add_argument(
            "--subscribe",
            action="store_true",
            help="Also make the demo workspace a subscriber in the offline Stripe double, which must be running "
            "(make run does this once it answers).",
        )
        parser.add_argument(
            "--site", default="http://127.0.0.1:8000", help="Where the server answers (Checkout's return address)."
        )

    def handle(self, *args, force=False, subscribe=False, site="http://127.0.0.1:8000", **options):
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates accounts with known passwords; it runs only with DEBUG on.")
        User = get_user_model()
        owner = self._user(User, *DEMO_OWNER)
        teammate = self._user(User, *DEMO_TEAMMATE)
        staff = self._user(User, *DEMO_STAFF, staff=True)
        two_factor_app_with_key(user=staff, key=DEMO_STAFF_TOTP_KEY)

        workspace = Workspace.objects.filter(name=DEMO_WORKSPACE, memberships__user=owner).first()
        # A month of entries would bury the console; the summary below says what was written.
        logging.getLogger("billing").setLevel(logging.WARNING)
        if workspace is not None:
            self.stdout.write(f"Demo workspace already seeded ({workspace.ledger_entries.count():,} entries).")
        else:
            workspace = self._seed(owner, teammate, staff)
        if subscribe:
            self._subscribe(workspace, owner, site.rstrip("/"))
            return
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Sign in as the workspace owner: {DEMO_OWNER[0]} / {DEMO_OWNER[1]}")
        self.stdout.write(
            f"  Staff (admin at /admin/):       {DEMO_STAFF[0]} / {DEMO_STAFF[1]}, then a code from an authenticator "
            f"app with the key {base64.b32encode(DEMO_STAFF_TOTP_KEY).decode()} (local only)"
        )

    def _user(self, User, email, password, staff=False):
        user, created = User.objects.get_or_create(username=email, defaults={"email": email})
        if created:
            user.set_password(password)
            user.is_staff = user.is_superuser = staff
            user.save()
        return user

    @transaction.atomic
    def _seed(self, owner, teammate, staff):
        now = timezone.now()
        zone = "Europe/Paris"
        started = now - timedelta(days=DEMO_DAYS)
        workspace = workspace_create(name=DEMO_WORKSPACE, owner=owner, plan_key="max", time_zone=zone, now=started)
        # The demo logins have verified addresses (issue 18): nothing on the page asks them to verify.
        for user in (owner, teammate):
            address_verify(user=user, email=user.email, now=started)
        Membership.objects.create(workspace=workspace, user=teammate, role=Membership.Role.ADMIN)
        for specialist, cap in DAILY_CAPS.items():
            cap_set(workspace=workspace, specialist=specialist, daily_cap=credits(cap))
        local_start = started.astimezone(workspace.zone)
        events = [event for event in demo_events(start=local_start, days=DEMO_DAYS + 1) if started < event.at < now]
        replies = sorted((local_start + timedelta(days=day, hours=10), lead) for lead, day in REPLIES.items())
        pack = TopUpPack.objects.get(key="100k")
        topup_at = now - timedelta(days=9, hours=3)

        outcomes: dict[str, int] = {}
        topped_up = False
        for index, event in enumerate(events):
            if not topped_up and event.at >= topup_at:
                self._topup(workspace, pack, owner, topup_at)
                topped_up = True
            while replies and replies[0][0] <= event.at:
                record_reply(workspace, replies.pop(0)[1], now=event.at)
            outcome = self._use(workspace, event, index)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if index % 250 == 0:
                self.stderr.write(f"  {index:,} / {len(events):,} demo events")
        summary = ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(outcomes.items()))
        self.stdout.write(f"Seeded {DEMO_WORKSPACE!r} over {DEMO_DAYS} days: {summary}.")
        return workspace

    def _subscribe(self, workspace, owner, site):
        """Subscribe the demo workspace in the offline double, unless it already subscribes there."""
        if not settings.STRIPE_API_BASE or not stripe_gateway.is_configured():
            raise CommandError(
                "--subscribe subscribes the demo in the offline Stripe double only (no STRIPE_SECRET_KEY)."
            )
        try:
            subscription_lost(workspace=workspace, now=timezone.now())  # a restarted double forgot the last one
            current = selectors.subscription_of(workspace_id=workspace.pk)
            if current is not None:
                self.stdout.write(
                    f"The demo already subscribes to {current.plan.name} ({current.stripe_subscription_id})."
                )
                return
            workspace.refresh_from_db()
            purchase, url = plan_checkout_start(
                workspace=workspace,
                plan_key="max" if workspace.plan.is_free else workspace.plan.key,
                seats=workspace.seats,
                user=owner,
                return_url=site + reverse("billing:checkout_return"),
                cancel_url=site + reverse("billing:settings_billing"),
            )
            _pay_with_test_card(url)
            purchase = checkout_return(workspace=workspace, session_id=purchase.stripe_checkout_session_id)
        except BillingError as exc:
            raise CommandError(f"Could not subscribe the demo workspace in the Stripe double: {exc.message}") from exc
        if purchase.status != purchase.Status.PAID:
            raise CommandError(f"The demo's subscription checkout is {purchase.status}, not paid.")
        subscription = selectors.subscription_of(workspace_id=workspace.pk)
        self.stdout.write(
            self.style.SUCCESS(f"The demo subscribes to {purchase.plan.name} in the Stripe double")
            + f" ({subscription.stripe_subscription_id if subscription else '?'}): "
            f"{format_cents(purchase.amount_cents)} paid by card for the rest of its period, "
            f"{format_credits(purchase.credits)} credits added; it renews with the period."
        )

    def _topup(self, workspace, pack, buyer, at):
        wallet = wallet_lock(workspace_id=workspace.pk)
        entry_post(
            wallet,
            kind=LedgerEntry.Kind.TOP_UP,
            topup_delta=pack.amount,
            idempotency_key=f"demo-topup:{pack.key}",
            actor=buyer,
            reason=f"Top-up pack {pack}",
            metadata={"pack": pack.key, "price_cents": pack.price_cents},
            now=at,
        )

    def _use(self, workspace, event, index):
        """Charge one demo call through the engine, at the time it happened."""
        usage = usage_event(
            action=event.action,
            quantity=event.quantity,
            idempotency_key=f"demo:{index}",
            specialist=event.specialist,
            lead=event.lead,
        )
        try:
            usage_record(workspace=workspace, events=[usage], now=event.at)
        except BillingError as refusal:
            return refusal.code
        return "charged"


def _pay_with_test_card(checkout_url: str) -> None:
    """What the owner does on the double's test checkout page: Pay, with the card that succeeds."""
    parts = urlsplit(checkout_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(
            "POST", f"{parts.path}/pay", "card=success", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        response = connection.getresponse()
        response.read()
    except OSError as exc:
        raise CommandError(f"The Stripe double's checkout page did not answer: {exc}") from exc
    finally:
        connection.close()
    if response.status != 303:
        raise CommandError(f"Paying on the Stripe double's checkout page answered {response.status}, not 303.")
