"""The memberships every settings request reads, and the signed-in user with them: what comes, in how many queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.auth import MembershipsBackend
from billing.models import Membership, Plan, Subscription
from billing.selectors import memberships_of, user_with_memberships
from tests.factories import UserFactory, WorkspaceFactory


def _subscribe(workspace, *, status):
    now = timezone.now()
    return Subscription.objects.create(
        workspace=workspace,
        stripe_subscription_id=f"sub_{workspace.pk}",
        status=status,
        plan=Plan.objects.get(key="pro"),
        current_period_start=now - timedelta(days=3),
        current_period_end=now + timedelta(days=27),
    )


@pytest.fixture
def member(db):
    """A user in three workspaces: their own (live subscription), one whose subscription ended, one with none."""
    user = UserFactory()
    own = WorkspaceFactory(owner=user, name="Own")
    ended, plain = WorkspaceFactory(name="Ended"), WorkspaceFactory(name="Plain")
    Membership.objects.create(workspace=ended, user=user, role="admin")
    Membership.objects.create(workspace=plain, user=user, role="member")
    live = _subscribe(own, status="active")
    _subscribe(ended, status="canceled")
    return user, live


def test_memberships_come_oldest_first_with_everything_a_settings_page_shows_in_one_query(
    member, django_assert_num_queries
):
    user, live = member
    with django_assert_num_queries(1):
        found = memberships_of(user_id=user.pk)
        shown = [
            (
                m.workspace.name,
                m.role,
                m.workspace.plan.key,
                m.workspace.wallet.plan_balance,
                m.workspace.wallet.workspace is m.workspace,
                m.workspace.live_subscription,
            )
            for m in found
        ]
    assert [row[:2] for row in shown] == [("Own", "owner"), ("Ended", "admin"), ("Plain", "member")]
    assert all(row[4] for row in shown) and shown[0][3] > 0
    # Only a running subscription counts: the ended one is history, like none at all.
    assert shown[0][5] == live and shown[0][5].status == "active"
    assert shown[1][5] is None and shown[2][5] is None


def test_the_user_comes_with_their_memberships_in_one_query_and_is_one_object(member, django_assert_num_queries):
    user, _ = member
    with django_assert_num_queries(1):
        found, memberships = user_with_memberships(user_id=user.pk)
        names = [(m.user.email, m.workspace.name, m.workspace.plan.key) for m in memberships]
    assert found.pk == user.pk and found.email == user.email and found.check_password("correct horse battery staple")
    assert names == [(user.email, "Own", "free"), (user.email, "Ended", "free"), (user.email, "Plain", "free")]
    assert all(m.user is found for m in memberships)


def test_a_user_in_no_workspace_costs_a_second_query_and_an_unknown_one_is_none(db, django_assert_num_queries):
    loner = UserFactory()
    with django_assert_num_queries(2):
        assert user_with_memberships(user_id=loner.pk) == (loner, [])
    with django_assert_num_queries(2):
        assert user_with_memberships(user_id=10**9) == (None, [])


def test_signing_in_reads_the_session_user_once_per_request(member, django_assert_num_queries):
    user, live = member
    with django_assert_num_queries(1):
        signed_in = MembershipsBackend().get_user(user.pk)
        assert signed_in.billing_memberships[0].workspace.live_subscription == live


@pytest.mark.django_db
def test_the_per_request_read_is_bound_server_side_and_kept_prepared(django_user_model):
    """Every signed-in request runs this read; bound client-side (Django's default) the server plans
    it afresh each time, which more than doubled the floor view's time (docs/performance.md)."""
    user = django_user_model.objects.create_user(username="prepared@example.com", password="x")
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    assert connection.features.uses_server_side_binding
    for _ in range(threshold + 1):
        user_with_memberships(user_id=user.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%billing_membership%"])
        assert cursor.fetchone()[0] >= 1
