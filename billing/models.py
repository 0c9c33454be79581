"""The billing domain.

Every credit amount in this module is an integer number of **millicredits** (1 credit =
1,000): token prices are "N credits per 10 tokens", so a 7-token Haiku call costs 0.7
credits, and only integers keep that exact. Money is integer US cents. No floats anywhere.

Only ``billing.services`` writes wallets and ledger entries; nothing here enforces a
business rule in ``save()``. What the database itself can guard (no negative balance,
unique keys, an append-only ledger) it does, as constraints and a trigger.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.utils import timezone

from billing.credits import MILLICREDITS_PER_CREDIT, format_credits


class CreditsField(models.BigIntegerField):
    """An amount of credits, stored as integer millicredits (1 credit = 1,000)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "In millicredits: 1 credit = 1,000.")
        super().__init__(*args, **kwargs)


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (use an IANA name such as 'Europe/Paris').")


# --- The catalog ----------------------------------------------------------------------------


# The plan a new workspace starts on: a sign-up's (billing.services.workspaces), named on the sign-up page from its row.
SIGNUP_PLAN_KEY = "free"


class Plan(models.Model):
    """A subscription plan: a monthly price and a monthly bucket of credits."""

    key = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    price_cents = models.PositiveIntegerField(help_text="Monthly price in US cents (per seat when per-seat).")
    allowance = CreditsField(help_text="Monthly bucket in millicredits (per seat when per-seat).")
    per_seat = models.BooleanField(default=False, help_text="Price and allowance are per user (Pro).")
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(allowance__gte=0), name="plan_allowance_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.price_cents == 0

    def allowance_for(self, seats: int) -> int:
        """The period's bucket for this many seats, in millicredits."""
        return self.allowance * seats if self.per_seat else self.allowance


class TopUpPack(models.Model):
    """A one-time pack of credits. Its discount is computed, never typed in."""

    key = models.SlugField(max_length=32, unique=True)
    amount = CreditsField(help_text="Credits in the pack, in millicredits.")
    price_cents = models.PositiveIntegerField()
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order", "amount"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="pack_amount_positive"),
            models.CheckConstraint(condition=Q(price_cents__gt=0), name="pack_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{format_credits(self.amount)} credits"

    def price_per_credit(self) -> Fraction:
        return Fraction(self.price_cents * MILLICREDITS_PER_CREDIT, self.amount)

    def discount_percent(self, base: TopUpPack) -> int:
        """Discount against ``base``'s price per credit, rounded *down* to a multiple of 5 %.

        Rounding down means the page never overstates a saving: 100K for $15 against 50K
        for $9 is 16.7 % cheaper and is labelled -15 %.
        """
        saving = (1 - self.price_per_credit() / base.price_per_credit()) * 100
        if saving <= 0:
            return 0
        return int(saving // 5) * 5


class Specialist(models.Model):
    """Who spends: the workspace's AI specialists (Sales / Sourcing, …). Caps are per specialist."""

    key = models.SlugField(max_length=32, primary_key=True)
    label = models.CharField(max_length=64)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "key"]

    def __str__(self) -> str:
        return self.label


class Action(models.Model):
    """A priced action in the catalog, named by a stable key that other services use.

    ``unit_price`` is millicredits per unit: Haiku costs 1 credit per 10 tokens, so 100 per
    token. A price change applies from then on; every ledger entry keeps the price it was
    charged at.
    """

    class Category(models.TextChoices):
        AI = "ai", "AI usage"
        INFRASTRUCTURE = "infrastructure", "External infrastructure"

    class Unit(models.TextChoices):
        TOKEN = "token", "token"
        PAGE = "page", "page"
        CALL = "call", "call"

    key = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=128)
    description = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=16, choices=Category.choices)
    specialist = models.ForeignKey(
        Specialist,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="actions",
        help_text="Infrastructure actions belong to one specialist; AI calls name theirs when charged.",
    )
    unit = models.CharField(max_length=8, choices=Unit.choices)
    unit_price = CreditsField(help_text="Millicredits per unit (per token, page or call).")
    max_quantity = models.PositiveBigIntegerField(help_text="Largest quantity one charge may carry.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order", "key"]
        constraints = [
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="action_price_not_negative"),
            models.CheckConstraint(condition=Q(max_quantity__gte=1), name="action_max_quantity_positive"),
            models.CheckConstraint(
                condition=Q(category="ai") | Q(specialist__isnull=False),
                name="action_infrastructure_has_specialist",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def is_ai(self) -> bool:
        return self.category == self.Category.AI

    def cost(self, quantity: int) -> int:
        """Exact price of ``quantity`` units in millicredits."""
        return self.unit_price * quantity


# --- Workspaces -----------------------------------------------------------------------------


class FreeCredits(models.TextChoices):
    """Whether a workspace's Free plan carries its monthly bucket (issue 18)."""

    GRANTED = "granted", "granted"  # every workspace opened before issue 18, and an address's first
    AWAITING = "awaiting", "awaiting the owner's email verification"
    NONE = "none", "none: the address had its Free grant in another workspace"


class Workspace(models.Model):
    """The billing account: a team with members, a plan and one wallet."""

    name = models.CharField(max_length=120)
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="Days for caps and usage end here."
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="workspaces")
    seats = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="A closed workspace cannot be charged.")
    # Bring-your-own-key: the Anthropic key, encrypted (billing.crypto); AI usage debits 0 while set.
    byok_key_encrypted = models.TextField(blank=True, editable=False)
    byok_key_hint = models.CharField(max_length=16, blank=True, editable=False, help_text="Masked, for display.")
    byok_set_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The spend guardrail: at most this many millicredits debited a period (None: no limit).
    monthly_budget = CreditsField(null=True, blank=True, help_text="Charges beyond this in a period are refused.")
    # The Stripe customer that pays for this workspace (created at the first purchase).
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)
    # The payment method Stripe charges next (the customer's default), as the webhooks and payments last
    # showed it, so the billing page shows it without calling Stripe (billing.services.cards). A card has
    # a brand and an expiry; a bank account its bank's name in ``brand`` and no expiry. The text fields'
    # db_default: raw INSERTs of workspaces (bench/resets.py) name their columns and leave these out.
    payment_method_id = models.CharField(max_length=255, blank=True, default="", db_default="", editable=False)
    payment_method_type = models.CharField(
        max_length=32, blank=True, default="", db_default="", editable=False, help_text='"card", "us_bank_account"…'
    )
    payment_method_brand = models.CharField(
        max_length=100, blank=True, default="", db_default="", editable=False, help_text="A card's brand or a bank."
    )
    payment_method_last4 = models.CharField(max_length=4, blank=True, default="", db_default="", editable=False)
    payment_method_exp_month = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    payment_method_exp_year = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    payment_method_as_of = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When Stripe last said so: an older report never replaces it."
    )
    # Issue 18: a sign-up's Free credits wait for its owner to verify their address, and each
    # address gets one Free grant (FreeGrant). ``unverified`` is what the charging statement reads:
    # charges and holds are refused (email_unverified) while it is set. It is cleared when the owner
    # verifies, or when the workspace pays (a top-up or a subscription: paid credits are never locked).
    unverified = models.BooleanField(
        default=False, db_default=False, help_text="Charges are refused until the owner verifies their email."
    )
    free_credits = models.CharField(
        max_length=8,
        choices=FreeCredits.choices,
        default=FreeCredits.GRANTED,
        db_default=FreeCredits.GRANTED,
        help_text="Whether the Free plan's monthly bucket is granted here (one workspace per verified address).",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(seats__gte=1), name="workspace_seats_positive"),
            models.CheckConstraint(
                condition=Q(payment_method_exp_month__isnull=True)
                | Q(payment_method_exp_month__gte=1, payment_method_exp_month__lte=12),
                name="workspace_payment_method_exp_month_valid",
            ),
        ]
        # Staff with this see the admin's "Adjust credits" form (billing.services.adjustments).
        permissions = [("adjust_credits", "Can adjust a workspace's credits")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def has_byok(self) -> bool:
        return bool(self.byok_key_encrypted)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user_per_workspace"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.workspace} ({self.get_role_display()})"

    @property
    def can_manage_billing(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


# --- Money on the books ---------------------------------------------------------------------


class Wallet(models.Model):
    """A workspace's two balances: the plan bucket of this period and carried-over top-ups.

    The only mutable balance in the system. Every change to it writes, in the same
    transaction, the ledger entries that account for it exactly.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.PROTECT, primary_key=True, related_name="wallet")
    plan_balance = CreditsField(default=0)
    topup_balance = CreditsField(default=0)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    period_allowance = CreditsField(default=0, help_text="Credits granted to the plan bucket this period.")
    period_anchor = models.DateTimeField(
        null=True, blank=True, help_text="Periods run monthly from here (creation, or the subscription's start)."
    )
    revision = models.BigIntegerField(default=0, help_text="Bumped by every change; pages use it to skip work.")
    # Today's debits per specialist (the workspace's day). They live on the wallet row because
    # charges hold that row's lock: a cap check against them sees every earlier charge, so
    # concurrent charges cannot pass a cap together. Pages read DailyUsage instead.
    day = models.DateField(null=True, blank=True)
    day_spend = models.JSONField(default=dict, blank=True, help_text="{specialist: millicredits debited on `day`}")
    # Credits debited by usage this period, for the monthly budget; on the locked row for the
    # same reason as day_spend, and zeroed when a period opens.
    period_spend = CreditsField(default=0)
    # Purchases paid by a delayed method (bank debit) still clearing: the balance region says
    # "payment processing" from this, with no query of its own on every poll.
    payments_processing = models.PositiveSmallIntegerField(default=0)
    # The holds not yet settled or released, {hold id: [millicredits, expiry in epoch µs]}: on the
    # locked row, like day_spend, so the charging statement subtracts what they reserve from the
    # balance it checks and concurrent holds and charges cannot overcommit it. Expired ones count
    # for nothing (lazy expiry: no job) and are pruned by the next hold placed. See services/holds.py.
    holds = models.JSONField(default=dict, db_default=Value({}, models.JSONField()), blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(plan_balance__gte=0), name="wallet_plan_balance_not_negative"),
            models.CheckConstraint(condition=Q(topup_balance__gte=0), name="wallet_topup_balance_not_negative"),
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="wallet_period_ordered"),
        ]
        # The reset job finds due wallets down this index; charges never change period_end, so
        # their wallet updates stay HOT (no index touched).
        indexes = [models.Index(fields=["period_end", "workspace"], name="wallet_due")]

    def __str__(self) -> str:
        return f"Wallet of {self.workspace}"

    @property
    def total(self) -> int:
        return self.plan_balance + self.topup_balance

    def active_holds(self, now: datetime) -> dict[str, list[int]]:
        """The holds in ``holds`` not expired at ``now``: hold id -> [millicredits, expiry µs]."""
        now_us = epoch_us(now)
        return {hold: entry for hold, entry in self.holds.items() if entry[1] > now_us}

    def reserved_at(self, now: datetime) -> int:
        """What the holds in ``holds`` reserve at ``now``: the unexpired ones' millicredits."""
        return sum(amount for amount, _ in self.active_holds(now).values())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(at: datetime) -> int:
    """``at`` in whole microseconds since 1970, exactly: a hold's expiry in the wallet's map."""
    return (at - _EPOCH) // timedelta(microseconds=1)


class LedgerEntry(models.Model):
    """One movement of credits. **Append-only**: never updated or deleted.

    A correction is a new entry. The database refuses UPDATE and DELETE on this table (a
    trigger, see migration 0002), so not even a bug or a superuser can rewrite history (0018 lifted
    it once, visibly, to split old staff adjustments' reasons into a description and an internal note).
    Each entry carries the change to each bucket and both balances after it, so the
    running balance can be checked entry by entry.
    """

    class Kind(models.TextChoices):
        USAGE = "usage", "Usage"
        TOP_UP = "top_up", "Top-up"
        PLAN_GRANT = "plan_grant", "Plan credits granted"
        PLAN_EXPIRY = "plan_expiry", "Unused plan credits expired"
        ADJUSTMENT = "adjustment", "Adjustment"
        REFUND = "refund", "Refund"

    class Bucket(models.TextChoices):
        """The two balances an entry can move (staff adjust one at a time)."""

        PLAN = "plan", "Plan bucket"
        TOP_UP = "top_up", "Top-up credits"

    # Indexes cost every insert on the hot path, so only the ones queries need exist: the
    # composite indexes below cover the workspace, and actions, specialists and users are
    # deactivated, never deleted, so their foreign keys need no index of their own.
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    plan_delta = CreditsField(help_text="Change to the plan bucket, in millicredits (negative = debit).")
    topup_delta = CreditsField(help_text="Change to the top-up balance, in millicredits (negative = debit).")
    plan_balance_after = CreditsField()
    topup_balance_after = CreditsField()
    action = models.ForeignKey(
        Action, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    specialist = models.ForeignKey(
        Specialist, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    quantity = models.BigIntegerField(null=True, blank=True, help_text="Tokens, pages or calls.")
    unit_price = CreditsField(null=True, blank=True, help_text="Millicredits per unit when charged.")
    list_amount = CreditsField(
        null=True, blank=True, help_text="What the usage costs at list price (differs from the debit under BYOK)."
    )
    byok = models.BooleanField(default=False, help_text="AI usage billed to the workspace's own Anthropic key.")
    lead = models.CharField(max_length=200, blank=True, help_text="The lead of an automated sequence step.")
    idempotency_key = models.CharField(max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        help_text="The person who made the entry (staff adjustments, purchases).",
    )
    # ``reason`` is the customer's text for every kind (their transactions, CSV and API show it);
    # ``internal_note`` is staff's alone and never leaves the admin.
    reason = models.TextField(
        blank=True,
        help_text="Shown to the customer with the entry (transactions, CSV, API). "
        "For a staff adjustment, the description staff wrote for the customer.",
    )
    internal_note = models.TextField(
        blank=True,
        default="",
        db_default="",  # the engine's own INSERTs (raw SQL) name their columns and leave this one out
        help_text="Staff only (admin and staff export), never shown to the customer: why a staff adjustment was made.",
    )
    external_ref = models.CharField(max_length=255, blank=True, help_text="Stripe id (session, invoice, charge…).")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="ledger_unique_key_per_workspace"),
            models.CheckConstraint(condition=Q(plan_balance_after__gte=0), name="ledger_plan_balance_not_negative"),
            models.CheckConstraint(condition=Q(topup_balance_after__gte=0), name="ledger_topup_balance_not_negative"),
            models.CheckConstraint(condition=~Q(idempotency_key=""), name="ledger_key_not_empty"),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(quantity__gt=0), name="ledger_quantity_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind="usage")
                | Q(action__isnull=False, quantity__isnull=False, unit_price__isnull=False, list_amount__isnull=False),
                name="ledger_usage_names_what_was_used",
            ),
            models.CheckConstraint(
                condition=~Q(kind="usage") | Q(plan_delta__lte=0, topup_delta__lte=0),
                name="ledger_usage_only_debits",
            ),
            # Every adjustment tells the customer what it is; one a person made also keeps their why.
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""), name="ledger_adjustment_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | Q(actor__isnull=True) | ~Q(internal_note=""),
                name="ledger_staff_adjustment_has_internal_note",
            ),
        ]
        indexes = [
            # "Recent transactions", keyset-paged by id, newest first.
            models.Index(fields=["workspace", "-id"], name="ledger_ws_recent"),
            # The list filtered by dates runs down this one, newest first (see selectors.ledger_page).
            models.Index(fields=["workspace", "created_at", "id"], name="ledger_ws_time"),
            # Filtering the list by a kind other than usage (top-ups, grants, adjustments…): those
            # rows are few, and a partial index leaves the usage inserts of the hot path untouched.
            models.Index(fields=["workspace", "kind", "-id"], name="ledger_ws_kind_recent", condition=~Q(kind="usage")),
            models.Index(fields=["external_ref"], name="ledger_external_ref", condition=~Q(external_ref="")),
            # The staff admin's kind filter across all workspaces; partial like the one above, so
            # the hot path's usage inserts never touch it.
            models.Index(fields=["kind", "-id"], name="ledger_kind_recent", condition=~Q(kind="usage")),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {format_credits(self.amount, signed=True)}"

    @property
    def amount(self) -> int:
        """Net change to the total balance (negative for a debit)."""
        return self.plan_delta + self.topup_delta

    @property
    def debited(self) -> int:
        return -self.amount if self.amount < 0 else 0


class Hold(models.Model):
    """Credits reserved for a long run before it starts, settled by its actual usage or released.

    A hold moves no credits and writes no ledger entry: it lowers what is *available* to other
    charges and holds (``available = plan + top-up − active holds``) until it is settled (one
    usage entry, ``settled_entry``), released, or it expires. This row is the record; the
    wallet's ``holds`` map is the copy the charging statement reads under the wallet's lock.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+", db_index=False)
    amount = CreditsField(help_text="Millicredits reserved.")
    idempotency_key = models.CharField(max_length=200)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    specialist = models.ForeignKey(
        Specialist, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(help_text="After this the hold reserves nothing (it may still be settled).")
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was settled or released.")
    settled_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="hold_unique_key_per_workspace"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(condition=Q(expires_at__gt=F("created_at")), name="hold_expires_after_created"),
            models.CheckConstraint(
                condition=Q(status="settled", settled_entry__isnull=False, closed_at__isnull=False)
                | Q(status="released", settled_entry__isnull=True, closed_at__isnull=False)
                | Q(status="active", settled_entry__isnull=True, closed_at__isnull=True),
                name="hold_status_consistent",
            ),
        ]

    def __str__(self) -> str:
        return f"Hold #{self.pk} {format_credits(self.amount)} credits ({self.status})"

    def is_expired(self, now) -> bool:
        return self.status == self.Status.ACTIVE and now >= self.expires_at


# --- What charging keeps beside the ledger ----------------------------------------------------


class SpecialistCap(models.Model):
    """A specialist's ``daily_cap`` in one workspace: credits it may spend per day, in the workspace's time zone."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="caps")
    specialist = models.ForeignKey(Specialist, on_delete=models.PROTECT, related_name="+")
    daily_cap = CreditsField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "specialist"], name="cap_unique_per_specialist"),
            models.CheckConstraint(condition=Q(daily_cap__gte=0), name="cap_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.specialist_id}: {format_credits(self.daily_cap)} credits/day"


class DailyUsage(models.Model):
    """Usage counters per workspace, day, specialist and action, kept by every charge.

    The pages' roll-ups (usage by day, by tool, by specialist, BYOK savings) read these
    rows, so no page ever sums the ledger. ``credits`` is what was debited; ``list_credits``
    what it would have cost without BYOK.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    specialist = models.ForeignKey(Specialist, on_delete=models.PROTECT, related_name="+", db_index=False)
    action = models.ForeignKey(Action, on_delete=models.PROTECT, related_name="+", db_index=False)
    credits = CreditsField(default=0)
    list_credits = CreditsField(default=0)
    quantity = models.BigIntegerField(default=0)
    events = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "day", "specialist", "action"], name="daily_usage_unique_counter"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.specialist_id}/{self.action_id}: {format_credits(self.credits)}"


class LeadState(models.Model):
    """A lead of an automated sequence. Once it replies, its sequence steps are refused until resumed."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.CharField(max_length=200)
    paused = models.BooleanField(default=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "lead"], name="lead_state_unique"),
            models.CheckConstraint(condition=~Q(lead=""), name="lead_state_named"),
        ]

    def __str__(self) -> str:
        return f"{self.lead} ({'paused' if self.paused else 'active'})"


class RefusalTally(models.Model):
    """Charges refused, counted per day and reason; the ledger is never touched by a refusal.

    Sequence steps refused for a lead that replied are the page's "follow-ups skipped", and
    their ``credits`` the credits reply detection saved.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    code = models.CharField(max_length=32)
    action = models.ForeignKey(Action, on_delete=models.PROTECT, related_name="+", db_index=False)
    refusals = models.BigIntegerField(default=0)
    credits = CreditsField(default=0, help_text="What the refused charges would have debited.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "day", "code", "action"], name="refusal_tally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.code} {self.action_id}: {self.refusals}"


# --- People and what they did -----------------------------------------------------------------


class Invitation(models.Model):
    """An owner's or admin's invitation to join a workspace with a role.

    Only a hash of the token is stored; the token itself lives in the emailed link.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=8, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "email"],
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.workspace} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class EmailAddress(models.Model):
    """A user's address and when they proved they read it (issue 18). No row: never asked to verify."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_address")
    email = models.EmailField()
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "email addresses"

    def __str__(self) -> str:
        return f"{self.email} ({'verified' if self.verified_at else 'unverified'})"


class EmailToken(models.Model):
    """A verification link sent to ``email``: single-use, expiring, and replaced by the next one sent.

    Only a hash of the token is stored; the token itself lives in the emailed link.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField()
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(used_at__isnull=True, replaced_at__isnull=True),
                name="email_token_one_live",
            ),
        ]

    def __str__(self) -> str:
        return f"verification of {self.email} sent {self.created_at:%Y-%m-%d %H:%M}"


class FreeGrant(models.Model):
    """The one workspace whose Free plan carries the monthly bucket for an address (issue 18).

    ``address`` is the normalised address (``billing.services.verification.address_normalized``):
    its uniqueness is the rule "one Free grant per verified address", held by the database.
    """

    address = models.CharField(max_length=254, unique=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.address} → {self.workspace}"


class Activity(models.Model):
    """Who did what to a workspace's billing settings: the Activity page."""

    class Verb(models.TextChoices):
        BYOK_SET = "byok_set", "set the BYOK Anthropic key"
        BYOK_REMOVED = "byok_removed", "removed the BYOK Anthropic key"
        CAP_CHANGED = "cap_changed", "changed a daily cap"
        MEMBER_INVITED = "member_invited", "invited a member"
        INVITATION_REVOKED = "invitation_revoked", "revoked an invitation"
        MEMBER_JOINED = "member_joined", "joined the workspace"
        MEMBER_REMOVED = "member_removed", "removed a member"
        TOP_UP = "top_up", "bought a top-up"
        PLAN_CHANGED = "plan_changed", "changed the plan"
        AUTO_TOP_UP = "auto_top_up", "changed auto top-up"
        BUDGET_CHANGED = "budget_changed", "changed the monthly budget"
        API_KEY_CREATED = "api_key_created", "created an API key"
        API_KEY_REVOKED = "api_key_revoked", "revoked an API key"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="activities", db_index=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    verb = models.CharField(max_length=24, choices=Verb.choices)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["workspace", "-id"], name="activity_ws_recent")]

    def __str__(self) -> str:
        return f"{self.actor} {self.get_verb_display()} {self.detail}".strip()


# --- Payments (Stripe) --------------------------------------------------------------------------


class Subscription(models.Model):
    """A workspace's Stripe subscription as Stripe last described it.

    ``plan`` and ``seats`` here are what Stripe bills; the workspace's own ``plan`` and
    ``seats`` are what this period's bucket was granted for. They differ after a downgrade
    (applied at the next period) and between an upgrade and its payment.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True, related_name="subscription")
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=32, help_text="Stripe's status: active, past_due, canceled…")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    seats = models.PositiveIntegerField(default=1)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True, help_text="A renewal failed; cleared when paid.")
    stripe_updated = models.BigIntegerField(default=0, help_text="Stripe time of the last state applied.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(seats__gte=1), name="subscription_seats_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_subscription_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status not in ("canceled", "incomplete_expired")


class Purchase(models.Model):
    """Money asked of or received from Stripe for credits: one Checkout Session, PaymentIntent or invoice.

    Fulfilment is idempotent per purchase: its credits are granted by one ledger entry whose
    key is derived from the Stripe id, whichever event (or the reconciliation job) comes first.
    """

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        SUBSCRIPTION = "subscription", "Plan"
        UPGRADE = "upgrade", "Plan change"
        RENEWAL = "renewal", "Renewal"
        AUTO_TOP_UP = "auto_top_up", "Auto top-up"

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        PROCESSING = "processing", "Payment processing"
        PAID = "paid", "Paid"
        FAILED = "failed", "Payment failed"
        EXPIRED = "expired", "Abandoned"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="purchases", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    pack = models.ForeignKey(TopUpPack, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    seats = models.PositiveIntegerField(null=True, blank=True)
    amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    credits = CreditsField(default=0, help_text="Credits this purchase grants once paid.")
    stripe_checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_invoice_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    receipt_url = models.URLField(max_length=1000, blank=True)
    # Money taken back by refunds and disputes, and the credits that took back out.
    refunded_cents = models.PositiveIntegerField(default=0)
    disputed_cents = models.PositiveIntegerField(default=0)
    credits_reversed = CreditsField(default=0)
    shortfall = CreditsField(default=0, help_text="Credits already spent when a refund came: owed, not taken.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=255, blank=True)
    # The period a plan's invoice bills (a subscription's first, a renewal), as Stripe's invoice line says.
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="purchase_ws_recent"),
            models.Index(fields=["stripe_charge_id"], name="purchase_charge", condition=~Q(stripe_charge_id="")),
        ]
        constraints = [
            # At most one auto top-up in flight per workspace, whoever starts it.
            models.UniqueConstraint(
                fields=["workspace"],
                condition=Q(kind="auto_top_up", status__in=["pending", "processing"]),
                name="purchase_one_auto_top_up_in_flight",
            ),
            models.CheckConstraint(condition=Q(credits__gte=0), name="purchase_credits_not_negative"),
            models.CheckConstraint(
                condition=Q(credits_reversed__lte=F("credits")), name="purchase_reversal_within_credits"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_status_display().lower()})"


class StripeEvent(models.Model):
    """Each webhook event Stripe sent, stored once (unique id) with how handling went."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Not handled (type)"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True)
    stripe_created = models.DateTimeField()
    object_id = models.CharField(max_length=255, blank=True, help_text="The id of the event's data.object.")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-received_at"], name="stripe_event_recent"),
            models.Index(fields=["status"], name="stripe_event_failed", condition=Q(status="failed")),
            models.Index(fields=["workspace", "-received_at"], name="stripe_event_ws"),
        ]
        permissions = [("retry_stripeevent", "Can re-run a failed Stripe event")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class BalanceAlert(models.Model):
    """A low-balance email sent: once per workspace, period and threshold (the unique key says so)."""

    class Kind(models.TextChoices):
        LOW = "low", "Below 20 % of the period's allowance"
        EMPTY = "empty", "Plan bucket used up"
        BUDGET = "budget", "Monthly budget reached"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    period_start = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    recipients = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "period_start", "kind"], name="balance_alert_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.workspace} {self.kind} alert for the period from {self.period_start:%Y-%m-%d}"


class AutoTopUp(models.Model):
    """Auto-recharge (as OpenAI's and Anthropic's consoles have it): buy a pack when the balance runs low.

    The pack is bought off-session with the card saved at the workspace's last checkout, and
    credited when Stripe confirms the payment. A decline, or a card that needs its owner to
    authenticate, turns it off (with the reason) until an owner turns it on again.
    """

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, primary_key=True, related_name="auto_top_up")
    enabled = models.BooleanField(default=False)
    threshold = CreditsField(help_text="Buy when the total balance falls below this many millicredits.")
    pack = models.ForeignKey(TopUpPack, on_delete=models.PROTECT, related_name="+")
    monthly_limit = models.PositiveSmallIntegerField(default=3, help_text="At most this many auto top-ups a period.")
    disabled_reason = models.CharField(max_length=255, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="auto_top_up_threshold_positive"),
            models.CheckConstraint(condition=Q(monthly_limit__gte=1), name="auto_top_up_limit_positive"),
        ]

    def __str__(self) -> str:
        return f"Auto top-up for {self.workspace} ({'on' if self.enabled else 'off'})"


# --- Staff changes to the catalog ----------------------------------------------------------------


class CatalogChange(models.Model):
    """One field of a plan, pack or action changed by staff: who, when, old → new.

    Written only by ``billing.services.catalog`` in the transaction that makes the change, and
    read-only in the admin. Prices apply from the change on; ledger entries keep the unit price
    they were charged at, so this table is how a price's history is told.
    """

    class Subject(models.TextChoices):
        PLAN = "plan", "Plan"
        PACK = "pack", "Top-up pack"
        ACTION = "action", "Action"

    subject = models.CharField(max_length=8, choices=Subject.choices)
    subject_id = models.BigIntegerField()
    subject_key = models.SlugField(max_length=64, db_index=False, help_text="The plan's, pack's or action's key.")
    field = models.CharField(max_length=64)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["subject", "subject_id", "-id"], name="catalog_change_subject")]
        constraints = [models.CheckConstraint(condition=~Q(field=""), name="catalog_change_names_field")]

    def __str__(self) -> str:
        return f"{self.get_subject_display()} {self.subject_key}: {self.field} {self.old_value!r} → {self.new_value!r}"
