"""Sign-in lockouts, as django-axes keeps them: when one lifts, and which recorded failures lock now.

Axes keeps a row per (account typed, client address, browser) with its failures and the time of the
last; an account or an address is locked while its rows within the cool-off hold ``AXES_FAILURE_LIMIT``
failures or more (settings, Auth).
"""

from __future__ import annotations

from datetime import datetime

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest


def lockout_ends(request: HttpRequest, credentials: dict | None) -> datetime | None:
    """When the lockout that refused this sign-in lifts (the latest, if both account and address are
    locked), or None if nothing locks it any more (staff lifted it meanwhile).

    Each locked set of rows, newest first: the lock holds while the rows down to the one whose
    failures reach the limit are within the cool-off, so it lifts a cool-off after that row's time.
    """
    limit = get_failure_limit(request, credentials)
    cool_off = get_cool_off(request)
    ends = None
    for attempts in AxesProxyHandler.get_implementation().get_user_attempts(request, credentials):
        counted = 0
        for attempt_time, failures in attempts.order_by("-attempt_time").values_list(
            "attempt_time", "failures_since_start"
        ):
            counted += failures
            if counted >= limit:
                ends = max(ends or attempt_time + cool_off, attempt_time + cool_off)
                break
    return ends


def _failures_within(field: str, since: datetime) -> Coalesce:
    same = AccessAttempt.objects.filter(**{field: OuterRef(field)}, attempt_time__gte=since).order_by()
    return Coalesce(Subquery(same.values(field).annotate(total=Sum("failures_since_start")).values("total")[:1]), 0)


def lockout_rows(attempts: QuerySet, *, now: datetime) -> QuerySet:
    """The rows with the failures counted now against their account and against their address."""
    since = now - settings.AXES_COOLOFF_TIME
    return attempts.annotate(
        account_failures=_failures_within("username", since),
        address_failures=_failures_within("ip_address", since),
    )


def lockout_rows_locked() -> Q:
    """Of ``lockout_rows``, those whose account or address is locked now."""
    limit = settings.AXES_FAILURE_LIMIT
    return Q(account_failures__gte=limit) | Q(address_failures__gte=limit)
