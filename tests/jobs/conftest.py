# The offline Stripe double, for the jobs that pay (auto top-up) through a real worker.
from tests.payments.conftest import stripe, stripe_double  # noqa: F401
