"""Every read the pages and the API need (being split by subject: see the modules beside this one)."""

from billing.selectors.ledger import *  # noqa: F403
from billing.selectors.payments import *  # noqa: F403
