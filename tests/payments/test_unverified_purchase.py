"""Issue 18: a workspace that pays is never locked behind its owner's email verification."""

from __future__ import annotations

import pytest

from billing.models import FreeCredits, TopUpPack, Workspace
from billing.services import account_signup, charge
from tests.billing.test_views import PASSWORD
from tests.conftest import balances
from tests.payments.test_checkout import books_balanced, start_topup

live = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@live
def test_an_unverified_sign_up_that_buys_a_pack_can_spend_it(client, webhooks):
    owner = account_signup(email="payer@example.test", password=PASSWORD, workspace_name="Payer")
    ws = Workspace.objects.get(memberships__user=owner)
    assert ws.unverified and balances(ws) == (0, 0)
    pack = TopUpPack.objects.get(key="100k")

    _, purchase = start_topup(client, owner)
    webhooks.pay_checkout(purchase.stripe_checkout_session_id, card="success")
    webhooks.wait_for_deliveries()

    ws.refresh_from_db()
    assert (ws.unverified, ws.free_credits) == (False, FreeCredits.AWAITING)  # Free still waits for the link
    assert balances(ws) == (0, pack.amount)
    entry = charge(workspace=ws, action="gmail-send", idempotency_key="after-paying")
    assert entry.topup_balance_after == pack.amount + entry.amount
    assert books_balanced()
