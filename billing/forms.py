"""Forms: parse and validate what people type; the rules stay in the services."""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from billing import selectors
from billing.bounds import column_length
from billing.credits import CreditsInputError, credits_input, format_credits
from billing.errors import BillingError
from billing.models import Invitation, LedgerEntry, Membership, Workspace
from billing.selectors import LedgerFilters


def refusal_shown(form: forms.BaseForm, refusal: BillingError) -> None:
    """A service's refusal on ``form``: beside the field it names, or above the form when that is none of its fields."""
    field = refusal.details.get("field")
    form.add_error(field if field in form.fields else None, refusal.message)


# The choices of specialists and tools come from the in-process catalog (billing.catalog), so
# neither validating nor showing these forms costs a query; the messages are the ones a model
# choice field gave.
INVALID_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def _specialist_choices() -> list[tuple[str, str]]:
    return list(selectors.specialist_names().items())


def _tool_choices() -> list[tuple[str, str]]:
    return [(tool.key, tool.label) for tool in selectors.tool_names().values()]


class ToolChoiceField(forms.ChoiceField):
    """A tool by key: the catalog's active ones, and a retired one named in the query string (old entries)."""

    def valid_value(self, value: str) -> bool:
        return super().valid_value(value) or selectors.tool_named(value) is not None


class CreditsField(forms.CharField):
    """An amount of credits a person types ("5000", "1,500", "2.5") as millicredits, or None when left empty.

    Read by ``credits_input``, the one rule and upper bound for every amount (``billing.credits``);
    ``minimum`` is in millicredits (0: no negatives, 1: positive only, ``-MAX_MILLICREDITS``: signed).
    """

    default_error_messages = {"required": "Enter a number of credits."}

    def __init__(self, *, minimum: int = 0, **kwargs) -> None:
        self.minimum = minimum
        super().__init__(**kwargs)

    def prepare_value(self, value: object) -> object:
        """An amount it holds (millicredits) shown as the pages show credits, "80,000" or "0.1", which it reads back."""
        if isinstance(value, int) and not isinstance(value, bool):
            return format_credits(value)
        return value

    def to_python(self, value: object) -> int | None:
        text = super().to_python(value)  # stripped; "" when nothing was typed
        if text in self.empty_values:
            return None
        try:
            return credits_input(text, minimum=self.minimum)
        except CreditsInputError as error:
            raise ValidationError(str(error), code="invalid") from None


class WholeNumberField(forms.IntegerField):
    """A whole number written in ASCII digits, as every number is read here (``billing.bounds``).

    Django's IntegerField takes whatever ``int()`` takes: "１２" and "٣" among them.
    """

    def to_python(self, value: object) -> int | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(text)


# The account's email is its username too (billing.services.accounts): the shorter column bounds it.
_ACCOUNT_EMAIL_LENGTH = min(column_length(get_user_model(), "username"), column_length(get_user_model(), "email"))


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=_ACCOUNT_EMAIL_LENGTH, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    workspace_name = forms.CharField(max_length=column_length(Workspace, "name"), label="Workspace name")


class InvitedSignupForm(forms.Form):
    """Signing up through an invitation: the address is the invitation's, and no workspace of one's own."""

    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=column_length(Invitation, "email"))
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class ByokForm(forms.Form):
    api_key = forms.CharField(
        label="Anthropic API key",
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "sk-ant-…", "spellcheck": "false"}),
    )


class TwoFactorCodeForm(forms.Form):
    """One code: the 6 digits an authenticator app shows, or (where ``backup``) a backup code."""

    code = forms.CharField(
        label="Code",
        max_length=64,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false", "required": True}
        ),
    )

    def __init__(self, *args, backup: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not backup:  # setting up: only the app's digits
            self.fields["code"].label = "The 6-digit code your app shows"
            self.fields["code"].widget.attrs.update({"inputmode": "numeric", "pattern": "[0-9 ]*"})


class CapForm(forms.Form):
    specialist = forms.ChoiceField(
        choices=lambda: [("", "Choose a specialist"), *_specialist_choices()],
        error_messages={"invalid_choice": INVALID_CHOICE},
    )
    daily_cap = CreditsField(
        required=False,
        label="Credits per day",
        help_text="Leave empty for no cap.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no cap"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        # Its ids start "cap-": the billing page also holds the transaction filters' "id_specialist".
        super().__init__(*args, auto_id="cap-%s", **kwargs)


FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # the transaction filter's date range


class LedgerFilterForm(forms.Form):
    specialist = forms.ChoiceField(
        choices=lambda: [("", "All specialists"), *_specialist_choices()],
        required=False,
        error_messages={"invalid_choice": INVALID_CHOICE},
    )
    action = ToolChoiceField(
        choices=lambda: [("", "All tools"), *_tool_choices()],
        required=False,
        label="Tool",
        error_messages={"invalid_choice": INVALID_CHOICE},
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *LedgerEntry.Kind.choices], required=False)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        action = self.data.get("action", "") if self.is_bound else ""
        field = self.fields["action"]
        if action and action not in dict(field.choices):
            retired = selectors.tool_named(action)  # no longer offered, kept selected while it filters the list
            if retired is not None:
                field.choices = [*field.choices, (action, retired[1].label)]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        # The range becomes the reader's midnights; year 1 or 9999 would overflow on the way.
        for name, day in (("date_from", start), ("date_to", end)):
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                self.add_error(name, f"Enter a date between {FIRST_DAY:%Y} and {LAST_DAY:%Y}.")
                start = end = None
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> LedgerFilters:
        data = self.cleaned_data
        return LedgerFilters(
            specialist=data.get("specialist") or "",
            action=data.get("action") or "",
            kind=data.get("kind") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


class AutoTopUpForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Turn on auto top-up")
    threshold = CreditsField(
        minimum=1,
        label="When the balance falls below (credits)",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "20000"}),
    )
    pack = forms.ChoiceField(label="Buy this pack", choices=())
    monthly_limit = WholeNumberField(label="At most this many times a month", min_value=1, max_value=31)

    def __init__(self, *args, packs: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pack"].choices = packs


class BudgetForm(forms.Form):
    budget = CreditsField(
        required=False,
        label="Monthly budget (credits)",
        help_text="Charges beyond this in a billing period are refused. Leave empty for no budget.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no budget"}),
    )
