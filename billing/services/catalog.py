"""Staff changes to the catalog: plans, top-up packs and action prices.

Each change locks the row, applies only the fields that really changed, and records each one
(who, when, old → new) as a :class:`~billing.models.CatalogChange` in the same transaction.
A price applies from the change on: the charging statement reads the action's ``unit_price``
live, and every ledger entry keeps the unit price it was charged at, so history never moves.

Keys, units, categories and specialists are not editable here: other services and Stripe's
lookup keys name things by them, and a unit change would change what past quantities meant.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from billing.bounds import BIGINT_MAX
from billing.catalog_cache import catalog_invalidate
from billing.errors import InvalidRequest, NotPermitted
from billing.models import Action, CatalogChange, Plan, TopUpPack
from billing.services.accounts import staff_may

logger = logging.getLogger(__name__)

Subject = CatalogChange.Subject

EDITABLE: dict[str, tuple[str, ...]] = {
    Subject.PLAN: ("name", "price_cents", "allowance", "sort_order", "is_active"),
    Subject.PACK: ("amount", "price_cents", "sort_order", "is_active"),
    Subject.ACTION: ("label", "description", "unit_price", "max_quantity", "sort_order", "is_active"),
}
MODELS: dict[str, type[models.Model]] = {Subject.PLAN: Plan, Subject.PACK: TopUpPack, Subject.ACTION: Action}
_SMALL_INT_MAX = 32_767


def _whole(field: str, value: Any, *, minimum: int, maximum: int = BIGINT_MAX) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{field} must be a whole number.", field=field)
    if value < minimum:
        raise InvalidRequest(f"{field} must be at least {minimum:,}.", field=field)
    if value > maximum:
        raise InvalidRequest(f"{field} must be at most {maximum:,}.", field=field)


def _text(field: str, value: Any, *, max_length: int, required: bool) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be text.", field=field)
    if required and not value.strip():
        raise InvalidRequest(f"{field} must not be empty.", field=field)
    if len(value) > max_length:
        raise InvalidRequest(f"{field} is too long ({max_length} characters at most).", field=field)


def _check_field(subject: str, row: models.Model, field: str, value: Any) -> None:
    if field == "is_active":
        if not isinstance(value, bool):
            raise InvalidRequest("is_active must be true or false.", field=field)
    elif field == "sort_order":
        _whole(field, value, minimum=0, maximum=_SMALL_INT_MAX)
    elif field in ("name", "label", "description"):
        _text(field, value, max_length=row._meta.get_field(field).max_length, required=field != "description")
    elif field == "price_cents":
        # Only the Free plan costs nothing: a price of 0 makes a plan free everywhere it is read.
        free = subject == Subject.PLAN and row.key == "free"
        _whole(field, value, minimum=0 if free else 1, maximum=2**31 - 1)
        if free and value != 0:
            raise InvalidRequest("The Free plan's price must stay 0.", field=field)
    elif field == "allowance":
        _whole(field, value, minimum=0)
    elif field == "amount":
        _whole(field, value, minimum=1)
    elif field == "unit_price":
        _whole(field, value, minimum=0)
    elif field == "max_quantity":
        _whole(field, value, minimum=1)


def catalog_changes_check(*, subject: str, row: models.Model, changes: Mapping[str, Any]) -> None:
    """Refuse a change the catalog's rules forbid, naming the field. Writes nothing.

    Forms call this to show the error beside the field; the update services call it again
    under the row's lock.
    """
    editable = EDITABLE.get(subject)
    if editable is None:
        raise InvalidRequest(f"Unknown catalog subject {subject!r}.", field="subject")
    for field, value in changes.items():
        if field not in editable:
            raise InvalidRequest(f"{field} cannot be changed here.", field=field)
        _check_field(subject, row, field, value)
    if subject == Subject.PLAN and row.key == "free" and changes.get("is_active") is False:
        # Sign-up opens Free workspaces and an unpaid renewal falls back to Free.
        raise InvalidRequest("The Free plan cannot be deactivated.", field="is_active")


def catalog_subject(row: models.Model) -> str:
    """Which of the catalog's kinds ``row`` is (``CatalogChange.Subject``)."""
    return next(subject for subject, model in MODELS.items() if isinstance(row, model))


def catalog_update(
    subject: str,
    pk: int,
    *,
    actor: AbstractBaseUser,
    changes: Mapping[str, Any],
    now: datetime | None = None,
) -> Any:
    """Change the ``subject`` row ``pk``'s editable fields (``EDITABLE``), recording each change."""
    model = MODELS[subject]
    if not staff_may(actor, f"billing.change_{model._meta.model_name}"):
        raise NotPermitted(f"Changing {model._meta.verbose_name_plural} needs the change permission.")
    now = now or timezone.now()
    with transaction.atomic():
        try:
            row = model.objects.select_for_update().get(pk=pk)
        except model.DoesNotExist:
            raise InvalidRequest(f"There is no {model._meta.verbose_name} {pk}.", field="id") from None
        catalog_changes_check(subject=subject, row=row, changes=changes)
        changed = [field for field, value in changes.items() if getattr(row, field) != value]
        if not changed:
            return row
        records = []
        for field in changed:
            records.append(
                CatalogChange(
                    subject=subject,
                    subject_id=row.pk,
                    subject_key=row.key,
                    field=field,
                    old_value=getattr(row, field),
                    new_value=changes[field],
                    changed_by=actor,
                    changed_at=now,
                )
            )
            setattr(row, field, changes[field])
        row.save(update_fields=changed)
        CatalogChange.objects.bulk_create(records)
        # This process forgets its snapshot once the change is committed. Other processes
        # pick it up when their own snapshot expires (billing.catalog_cache.TTL_SECONDS); prices
        # need no wait at all, since the charging statement reads them from the table.
        transaction.on_commit(catalog_invalidate)
    logger.info(
        "catalog %s %s changed by %s: %s",
        subject,
        row.key,
        actor.get_username(),
        ", ".join(f"{r.field} {r.old_value!r} -> {r.new_value!r}" for r in records),
    )
    return row


def plan_update(
    *, plan_id: int, actor: AbstractBaseUser, changes: Mapping[str, Any], now: datetime | None = None
) -> Plan:
    """Change a plan's name, price, monthly credits, order or availability (from the next period on)."""
    return catalog_update(Subject.PLAN, plan_id, actor=actor, changes=changes, now=now)


def pack_update(
    *, pack_id: int, actor: AbstractBaseUser, changes: Mapping[str, Any], now: datetime | None = None
) -> TopUpPack:
    """Change a top-up pack's credits, price, order or availability (for purchases from now on)."""
    return catalog_update(Subject.PACK, pack_id, actor=actor, changes=changes, now=now)


def action_update(
    *, action_id: int, actor: AbstractBaseUser, changes: Mapping[str, Any], now: datetime | None = None
) -> Action:
    """Change an action's price, limit, label or availability: charges from now on use it."""
    return catalog_update(Subject.ACTION, action_id, actor=actor, changes=changes, now=now)
