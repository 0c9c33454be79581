"""Auto top-up: when a workspace's balance falls below its threshold, buy its pack off-session.

The periodic job (every minute) finds the workspaces below their threshold in one query and
starts one purchase each: the partial unique index "one auto top-up in flight per workspace"
makes a second job, or a second process, fail to start another. The card is charged with a
PaymentIntent whose idempotency key is the purchase's id, so a retried call cannot charge twice;
credits arrive when Stripe confirms (``payment_intent.succeeded``, or the answer itself when it
is already final — both go through the same idempotent settlement). A decline or a card that
needs authentication turns auto top-up off, with the reason, and emails the owners.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from billing import stripe_gateway as gateway
from billing.bounds import id_parsed
from billing.credits import MAX_MILLICREDITS, format_credits
from billing.errors import BillingError, FulfilmentMismatch, InvalidRequest, PaymentFailed
from billing.models import Activity, AutoTopUp, Membership, Purchase, TopUpPack, Wallet, Workspace
from billing.services.accounts import activity_record
from billing.services.checkout import pack_paid, payment_details
from billing.services.wallets import wallet_lock

logger = logging.getLogger(__name__)

MAX_MONTHLY_LIMIT = 31


def auto_topup_set(
    *,
    workspace: Workspace,
    actor: AbstractBaseUser,
    enabled: bool,
    threshold: int,
    pack_key: str,
    monthly_limit: int,
) -> AutoTopUp:
    """Turn auto top-up on or off, or change it; validated, recorded in Activity."""
    pack = TopUpPack.objects.filter(key=pack_key, is_active=True).first()
    if pack is None:
        raise InvalidRequest(f"There is no top-up pack called {pack_key!r}.", field="pack")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 < threshold <= MAX_MILLICREDITS:
        raise InvalidRequest(
            f"The threshold must be a positive number of credits, at most {format_credits(MAX_MILLICREDITS)}.",
            field="threshold",
        )
    if not isinstance(monthly_limit, int) or not 1 <= monthly_limit <= MAX_MONTHLY_LIMIT:
        raise InvalidRequest(f"The monthly limit must be from 1 to {MAX_MONTHLY_LIMIT}.", field="monthly_limit")
    if enabled and not workspace.stripe_customer_id:
        raise InvalidRequest(
            "Buy a top-up once first: auto top-up charges the card saved at checkout.", field="enabled"
        )
    setting, _ = AutoTopUp.objects.update_or_create(
        workspace=workspace,
        defaults={
            "enabled": enabled,
            "threshold": threshold,
            "pack": pack,
            "monthly_limit": monthly_limit,
            "disabled_reason": "",
            "updated_by": actor,
            "updated_at": timezone.now(),
        },
    )
    detail = (
        f"on: {pack} below {format_credits(threshold)} credits, at most {monthly_limit} a month" if enabled else "off"
    )
    activity_record(workspace=workspace, actor=actor, verb=Activity.Verb.AUTO_TOP_UP, detail=detail)
    return setting


@dataclass
class AutoTopUpSummary:
    started: list[int] = field(default_factory=list)
    credited: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def auto_topups_due() -> list[AutoTopUp]:
    """Enabled, below the threshold, nothing in flight and the period's limit not reached."""
    candidates = (
        AutoTopUp.objects.select_related("workspace", "pack", "workspace__wallet")
        .filter(enabled=True, workspace__closed_at__isnull=True, workspace__stripe_customer_id__isnull=False)
        .filter(threshold__gt=F("workspace__wallet__plan_balance") + F("workspace__wallet__topup_balance"))
    )
    return [s for s in candidates if _bought(s.workspace_id, s.workspace.wallet) < s.monthly_limit]


def _bought(workspace_id: int, wallet: Wallet) -> int:
    """Auto top-ups this period that did not fail: what counts against the monthly limit."""
    return (
        Purchase.objects.filter(
            workspace_id=workspace_id, kind=Purchase.Kind.AUTO_TOP_UP, created_at__gte=wallet.period_start
        )
        .exclude(status__in=(Purchase.Status.FAILED, Purchase.Status.EXPIRED))
        .count()
    )


def auto_topups_run(*, now: datetime | None = None) -> AutoTopUpSummary:
    """Start (and, when Stripe answers at once, settle) an auto top-up for every workspace that needs one."""
    now = now or timezone.now()
    summary = AutoTopUpSummary()
    for setting in auto_topups_due():
        purchase = auto_topup_start(setting=setting, now=now)
        if purchase is None:
            continue
        summary.started.append(setting.workspace_id)
        outcome = _charge(setting, purchase, now)
        (summary.credited if outcome == Purchase.Status.PAID else summary.failed).append(setting.workspace_id)
    return summary


def auto_topup_start(*, setting: AutoTopUp, now: datetime) -> Purchase | None:
    """The purchase for this run, or None when another run got there first.

    ``auto_topups_due`` read the balance without a lock: by now another run may have bought and credited
    the pack (nothing in flight any more, so the one-in-flight index would not stop a second).
    So every condition is checked again under the wallet's row lock, the lock crediting a pack
    takes too: another run's top-up is then either still in flight (the index refuses this
    one) or credited (the balance says so), never between the two.
    """
    with transaction.atomic():
        wallet = wallet_lock(workspace_id=setting.workspace_id)
        locked = AutoTopUp.objects.select_related("pack").filter(pk=setting.pk, enabled=True).first()
        if locked is None:
            return None  # turned off meanwhile (a decline in another run, or its owner)
        if wallet.total >= locked.threshold:
            return None
        if _bought(setting.workspace_id, wallet) >= locked.monthly_limit:
            return None
        try:
            with transaction.atomic():
                return Purchase.objects.create(
                    workspace_id=setting.workspace_id,
                    kind=Purchase.Kind.AUTO_TOP_UP,
                    pack=locked.pack,
                    amount_cents=locked.pack.price_cents,
                    currency=settings.STRIPE_CURRENCY,
                    credits=locked.pack.amount,
                    created_at=now,
                )
        except IntegrityError:
            return None  # another run's top-up is still in flight


def _charge(setting: AutoTopUp, purchase: Purchase, now: datetime) -> str:
    workspace = setting.workspace
    try:
        intent = gateway.payment_intent_create_off_session(
            customer=workspace.stripe_customer_id or "",
            amount_cents=purchase.amount_cents,
            currency=purchase.currency,
            description=f"Sigora auto top-up: {purchase.pack} credits",
            metadata={"workspace_id": str(workspace.pk), "purchase_id": str(purchase.pk), "kind": "auto_top_up"},
            idempotency_key=f"sigora-auto-top-up-{purchase.pk}",
        )
    except PaymentFailed as exc:
        _refused(setting, purchase, exc, now)
        return Purchase.Status.FAILED
    except BillingError as exc:
        # Stripe unreachable: nothing was charged for sure; let the next run try again.
        logger.warning("auto top-up for workspace %s not started: %s", workspace.pk, exc.message)
        Purchase.objects.filter(pk=purchase.pk).update(status=Purchase.Status.FAILED, failure=exc.message[:255])
        return Purchase.Status.FAILED
    Purchase.objects.filter(pk=purchase.pk).update(stripe_payment_intent_id=intent["id"])
    settled = payment_intent_settled(intent=intent, now=now)
    return settled.status if settled else Purchase.Status.PENDING


def payment_intent_settled(*, intent: dict[str, Any], now: datetime | None = None) -> Purchase | None:
    """``payment_intent.succeeded`` / ``payment_failed`` for a payment made without Checkout (auto top-up).

    Checkout's own payments are fulfilled through their session, so only purchases that were
    started as a bare PaymentIntent are settled here; the current state is fetched first.
    """
    now = now or timezone.now()
    purchase = Purchase.objects.filter(stripe_payment_intent_id=intent["id"], kind=Purchase.Kind.AUTO_TOP_UP).first()
    metadata = intent.get("metadata") or {}
    purchase_id = id_parsed(metadata.get("purchase_id"))
    if purchase is None and metadata.get("kind") == "auto_top_up" and purchase_id is not None:
        # Charged, but the process died before recording the PaymentIntent: its metadata links it.
        Purchase.objects.filter(
            pk=purchase_id, kind=Purchase.Kind.AUTO_TOP_UP, stripe_payment_intent_id__isnull=True
        ).update(stripe_payment_intent_id=intent["id"])
        purchase = Purchase.objects.filter(stripe_payment_intent_id=intent["id"]).first()
    if purchase is None or purchase.status == Purchase.Status.PAID:
        return purchase
    current = gateway.payment_intent_retrieve(intent["id"])
    details = payment_details(intent["id"]) if current.get("status") == "succeeded" else {}
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(pk=purchase.pk)
        if purchase.status == Purchase.Status.PAID:
            return purchase
        if current.get("status") == "succeeded":
            if current.get("amount_received", current.get("amount")) != purchase.amount_cents:
                raise FulfilmentMismatch(f"Payment {intent['id']} does not match purchase #{purchase.pk}.")
            pack_paid(
                purchase, payment_id=intent["id"], reason=f"Auto top-up: {purchase.pack}", details=details, now=now
            )
        elif current.get("status") in ("requires_payment_method", "canceled"):
            error = current.get("last_payment_error") or {}
            purchase.status = Purchase.Status.FAILED
            purchase.failure = (error.get("message") or "The payment failed.")[:255]
        purchase.save()
    return purchase


def _refused(setting: AutoTopUp, purchase: Purchase, exc: PaymentFailed, now: datetime) -> None:
    reason = (
        "Your card needs you to authenticate this payment, which cannot happen automatically."
        if exc.needs_authentication
        else f"The card was declined ({exc.decline_code or 'declined'})."
    )
    with transaction.atomic():
        Purchase.objects.filter(pk=purchase.pk).update(
            status=Purchase.Status.FAILED,
            failure=reason[:255],
            stripe_payment_intent_id=exc.payment_intent or None,
        )
        AutoTopUp.objects.filter(pk=setting.pk).update(enabled=False, disabled_reason=reason[:255], updated_at=now)
        activity_record(
            workspace=setting.workspace, actor=None, verb=Activity.Verb.AUTO_TOP_UP, detail=f"turned off: {reason}"
        )
        transaction.on_commit(lambda: _tell_owners(setting.workspace, reason))
    logger.warning("auto top-up for workspace %s refused: %s", setting.workspace_id, reason)


def _tell_owners(workspace: Workspace, reason: str) -> None:
    owners = list(
        Membership.objects.filter(workspace=workspace, role=Membership.Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not owners:
        return
    link = settings.SITE_URL + reverse("billing:settings_billing")
    send_mail(
        subject=f"{workspace.name}: auto top-up is off",
        message=(
            f"An automatic top-up for {workspace.name} could not be charged. {reason}\n\n"
            f"Auto top-up is now off, so nothing else will be tried. Buy a pack (which also saves a working card) "
            f"and turn it back on: {link}"
        ),
        from_email=None,
        recipient_list=owners,
    )
