"""Payments run against the project's offline Stripe double, over real HTTP on loopback.

``stripe_double`` is one double for the session (its state only grows; ids never repeat) with
the catalog synced into it. Webhooks are off unless a test asks for ``webhooks``: that points
the double at the live test server, so events travel the whole way (signed, over HTTP) into the
real webhook view. Tests that call the services directly build events from the double's own
objects instead.
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

API_KEY = "sk_test_payments_suite"
WEBHOOK_SECRET = "whsec_payments_suite_secret"


@pytest.fixture(scope="session")
def stripe_double():
    from stripe_double import StripeDouble

    double = StripeDouble(host="127.0.0.1", port=0, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    double.start()
    yield double
    double.stop()


@pytest.fixture
def stripe(stripe_double, settings):
    """Point billing at the double; sync the catalog into it (idempotent) for this test's database."""
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = stripe_double.url
    stripe_double.webhook_url = None
    from billing.services.stripe_catalog import stripe_catalog_sync

    stripe_catalog_sync()
    yield stripe_double
    stripe_double.webhook_url = None
    stripe_double.wait_for_deliveries()


@pytest.fixture
def webhooks(stripe, live_server):
    """Deliver the double's events to the real webhook view on the live test server."""
    stripe.webhook_url = f"{live_server.url}/stripe/webhook/"
    assert django_settings.STRIPE_WEBHOOK_SECRET == WEBHOOK_SECRET
    return stripe


@pytest.fixture
def stripe_client(stripe):
    """The real stripe library pointed at the double, for what staff do in Stripe's dashboard (refunds)."""
    import stripe as stripe_lib

    return stripe_lib.StripeClient(API_KEY, base_addresses={"api": stripe.url})
