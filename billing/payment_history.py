"""The billing history and the card on file, under their old name.

They are selectors and live in ``billing.selectors`` (``billing/selectors/payments.py``), where
new code imports them from. This module stays only while ``billing/views.py`` (being rewritten)
imports ``billing.payment_history`` for these three names; remove it once nothing does.
"""

from billing.selectors.payments import BillingHistory, billing_history_read, payment_method_on_file

__all__ = ["BillingHistory", "billing_history_read", "payment_method_on_file"]
