"""The admin's forms: they parse what staff type; the services decide and write."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms

from billing.credits import MAX_MILLICREDITS
from billing.errors import InvalidRequest
from billing.forms import CreditsField, refusal_shown
from billing.models import LedgerEntry
from billing.services import catalog_changes_check
from billing.services.adjustments import MAX_REASON_LENGTH
from billing.services.catalog import catalog_subject


def new_adjustment_token() -> str:
    """The idempotency key one adjustment form carries from its first step to the confirmation."""
    return secrets.token_hex(16)


class AdjustCreditsForm(forms.Form):
    amount = CreditsField(
        minimum=-MAX_MILLICREDITS,
        label="Amount (credits)",
        help_text="Positive adds, negative takes away: 500, -12.5, 1,000. Exact to a thousandth of a credit.",
    )
    bucket = forms.ChoiceField(choices=LedgerEntry.Bucket.choices, widget=forms.RadioSelect)
    # Two texts with two readers: the customer reads the description in their transactions and
    # CSV; the note stays with staff (the admin and the staff export).
    description = forms.CharField(
        label="Description (the customer sees this)",
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "placeholder": "Goodwill credit for the outage of May 3"}),
        help_text="Required. Shown word for word in the customer's transactions and CSV: write it for them, "
        "with no ticket numbers, names or internal detail.",
    )
    internal_note = forms.CharField(
        label="Internal note (staff only)",
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Why you made it, kept on the ledger entry with your name; the customer never sees it. "
        "The support ticket helps.",
    )
    token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)


class CatalogForm(forms.ModelForm):
    """A plan, pack or action edit, checked against the catalog's rules before the service runs."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changes = {name: cleaned[name] for name in self.changed_data if name in cleaned}
        try:
            catalog_changes_check(subject=catalog_subject(self.instance), row=self.instance, changes=changes)
        except InvalidRequest as error:
            refusal_shown(self, error)
        return cleaned
