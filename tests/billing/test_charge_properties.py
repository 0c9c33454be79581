"""Property-based tests: the engine against a plain Python model of the rules."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from billing.catalog_cache import catalog_invalidate
from billing.models import LedgerEntry, Wallet
from billing.services import InsufficientCredits, charge, charge_batch
from tests.conftest import fund
from tests.factories import WorkspaceFactory

PRICES = {"claude-haiku": 100, "claude-sonnet": 300, "claude-opus": 1_500, "crustdata-search": 500_000}
MAX_QUANTITY = {"claude-haiku": 50_000, "claude-sonnet": 50_000, "claude-opus": 50_000, "crustdata-search": 5}

balances_in_credits = st.integers(min_value=0, max_value=20_000)
a_charge = st.sampled_from(sorted(PRICES)).flatmap(
    lambda key: st.tuples(st.just(key), st.integers(min_value=1, max_value=MAX_QUANTITY[key]))
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(plan: int, topup: int, cost: int) -> tuple[int, int]:
    """The rule: the plan bucket first, then top-ups."""
    from_plan = min(plan, cost)
    return from_plan, cost - from_plan


class ChargeArithmetic(TestCase):
    def setUp(self):
        catalog_invalidate()

    @fast
    @given(plan=balances_in_credits, topup=balances_in_credits, charges=st.lists(a_charge, min_size=1, max_size=12))
    def test_single_charges_follow_the_model_exactly(self, plan, topup, charges):
        workspace = WorkspaceFactory()
        wallet = fund(workspace, plan=plan, topup=topup)
        model_plan, model_topup = wallet.plan_balance, wallet.topup_balance
        for n, (action, quantity) in enumerate(charges):
            cost = PRICES[action] * quantity
            if cost > model_plan + model_topup:
                with self.assertRaises(InsufficientCredits):
                    charge(workspace=workspace, action=action, quantity=quantity, idempotency_key=f"k{n}")
                continue
            from_plan, from_topup = split(model_plan, model_topup, cost)
            model_plan, model_topup = model_plan - from_plan, model_topup - from_topup
            entry = charge(workspace=workspace, action=action, quantity=quantity, idempotency_key=f"k{n}")
            assert (entry.plan_delta, entry.topup_delta) == (-from_plan, -from_topup)
            assert (entry.plan_balance_after, entry.topup_balance_after) == (model_plan, model_topup)
        wallet = Wallet.objects.get(workspace=workspace)
        assert (wallet.plan_balance, wallet.topup_balance) == (model_plan, model_topup)
        entries = LedgerEntry.objects.filter(workspace=workspace)
        assert sum(e.plan_delta for e in entries) == model_plan
        assert sum(e.topup_delta for e in entries) == model_topup

    @fast
    @given(plan=balances_in_credits, topup=balances_in_credits, charges=st.lists(a_charge, min_size=1, max_size=30))
    def test_a_batch_is_all_or_nothing_and_splits_like_single_charges(self, plan, topup, charges):
        workspace = WorkspaceFactory()
        wallet = fund(workspace, plan=plan, topup=topup)
        start = (wallet.plan_balance, wallet.topup_balance)
        events = [{"action": a, "quantity": q, "idempotency_key": f"b{n}"} for n, (a, q) in enumerate(charges)]
        total = sum(PRICES[a] * q for a, q in charges)
        usage = LedgerEntry.objects.filter(workspace=workspace, kind="usage")
        if total > sum(start):
            with self.assertRaises(InsufficientCredits):
                charge_batch(workspace=workspace, events=events)
            wallet.refresh_from_db()
            assert (wallet.plan_balance, wallet.topup_balance) == start
            assert not usage.exists()
            return
        entries = charge_batch(workspace=workspace, events=events)
        model_plan, model_topup = start
        for entry, (action, quantity) in zip(entries, charges, strict=True):
            from_plan, from_topup = split(model_plan, model_topup, PRICES[action] * quantity)
            model_plan, model_topup = model_plan - from_plan, model_topup - from_topup
            assert (entry.plan_delta, entry.topup_delta) == (-from_plan, -from_topup)
            assert (entry.plan_balance_after, entry.topup_balance_after) == (model_plan, model_topup)
        assert usage.count() == len(charges)
        wallet.refresh_from_db()
        assert (wallet.plan_balance, wallet.topup_balance) == (model_plan, model_topup)
        assert model_plan + model_topup == sum(start) - total
