"""The billing history and the card on file: moved to ``billing.selectors.payments``."""

from billing.selectors.payments import *  # noqa: F403
