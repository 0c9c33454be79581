"""Forms: parse and validate what people type; the rules stay in the services."""

from __future__ import annotations

from django import forms

from billing.credits import credits
from billing.models import Action, LedgerEntry, Membership, Specialist
from billing.selectors import LedgerFilters


class SignupForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    workspace_name = forms.CharField(max_length=120, label="Workspace name")


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class ByokForm(forms.Form):
    api_key = forms.CharField(
        label="Anthropic API key",
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "sk-ant-…", "spellcheck": "false"}),
    )


class CapForm(forms.Form):
    specialist = forms.ModelChoiceField(
        queryset=Specialist.objects.all(), to_field_name="key", empty_label="Choose a specialist"
    )
    daily_cap = forms.CharField(
        required=False,
        label="Credits per day",
        help_text="Leave empty for no cap.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no cap"}),
    )

    def clean_specialist(self):
        return self.cleaned_data["specialist"].key

    def clean(self):
        cleaned = super().clean()
        raw = (cleaned.get("daily_cap") or "").strip()
        if not raw:
            cleaned["daily_cap_millicredits"] = None
            return cleaned
        try:
            amount = credits(raw)
        except ValueError:
            self.add_error("daily_cap", "Enter a number of credits, e.g. 5000 or 2.5.")
            return cleaned
        if amount < 0:
            self.add_error("daily_cap", "A cap cannot be negative.")
        cleaned["daily_cap_millicredits"] = amount
        return cleaned


class LedgerFilterForm(forms.Form):
    specialist = forms.ModelChoiceField(
        queryset=Specialist.objects.all(), to_field_name="key", required=False, empty_label="All specialists"
    )
    action = forms.ModelChoiceField(
        queryset=Action.objects.all(), to_field_name="key", required=False, empty_label="All tools", label="Tool"
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *LedgerEntry.Kind.choices], required=False)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> LedgerFilters:
        data = self.cleaned_data
        return LedgerFilters(
            specialist=data["specialist"].key if data.get("specialist") else "",
            action=data["action"].key if data.get("action") else "",
            kind=data.get("kind") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
