"""Forms: parse and validate what people type; the rules stay in the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from html import escape

from django import forms
from django.forms.utils import pretty_name
from django.utils.safestring import SafeString, mark_safe

from billing import selectors
from billing.credits import credits
from billing.errors import BillingError
from billing.models import LedgerEntry, Membership
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


def select_options(choices: list[tuple[str, str]], selected: str) -> SafeString:
    """``<option>`` elements for a ``<select>``, escaped, straight from the choices (no widget templates)."""
    return mark_safe(  # every value and label escaped here (django.utils.html.escape is this, wrapped)
        "".join(
            f'<option value="{escape(value)}"{" selected" if value == selected else ""}>{escape(str(label))}</option>'
            for value, label in choices
        )
    )


@dataclass(frozen=True)
class Control:
    """One form control as plain data for the template: a ``<select>`` when it has options, else an input."""

    name: str
    label: str
    value: str
    errors: str  # the field's messages in one line, "" when it is valid
    options: SafeString | None = None
    widget: str = ""  # the whole <select> or <input> (safe markup), where the form writes it


def _value(form: forms.Form, name: str) -> str:
    """What the control shows: what was typed when the form is bound, else its initial value."""
    if form.is_bound:
        return form.data.get(form.add_prefix(name), "") or ""
    initial = form.get_initial_for_field(form.fields[name], name)
    return "" if initial is None else str(initial)


def _errors(form: forms.Form, name: str) -> str:
    return " ".join(form.errors.get(name, ())) if form.is_bound else ""


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
    specialist = forms.ChoiceField(choices=_specialist_choices, error_messages={"invalid_choice": INVALID_CHOICE})
    daily_cap = forms.CharField(
        required=False,
        label="Credits per day",
        help_text="Leave empty for no cap.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no cap"}),
    )

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

    def controls(self) -> dict[str, Control]:
        specialist = _value(self, "specialist")
        return {
            "specialist": Control(
                "specialist",
                "Specialist",
                specialist,
                _errors(self, "specialist"),
                select_options([("", "Choose a specialist"), *_specialist_choices()], specialist),
            ),
            "daily_cap": Control("daily_cap", "Credits per day", _value(self, "daily_cap"), _errors(self, "daily_cap")),
        }


FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # the transaction filter's date range


class LedgerFilterForm(forms.Form):
    specialist = forms.ChoiceField(
        choices=_specialist_choices, required=False, error_messages={"invalid_choice": INVALID_CHOICE}
    )
    action = ToolChoiceField(
        choices=_tool_choices, required=False, label="Tool", error_messages={"invalid_choice": INVALID_CHOICE}
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *LedgerEntry.Kind.choices], required=False)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

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

    def controls(self) -> list[Control]:
        """The filter controls as plain data, in the form's order (the dates are ``<input type=date>``)."""
        return self._controls(self.fields, lambda name: _value(self, name), lambda name: _errors(self, name))

    @classmethod
    def blank_controls(cls) -> list[Control]:
        """The controls before anyone filters: no form to build (its fields are deep-copied) for nothing."""
        return cls._controls(cls.base_fields, lambda name: "", lambda name: "")

    @staticmethod
    def _controls(fields: dict[str, forms.Field], value_of: Callable, errors_of: Callable) -> list[Control]:
        tools = _tool_choices()
        action = value_of("action")
        if action and action not in dict(tools):
            retired = selectors.tool_named(action)  # kept selected while it filters the list
            if retired is not None:
                tools.append((action, retired[1].label))
        options = {
            "specialist": [("", "All specialists"), *_specialist_choices()],
            "action": [("", "All tools"), *tools],
            "kind": fields["kind"].choices,
        }
        found = []
        for name, field in fields.items():
            value, errors, choices = value_of(name), errors_of(name), options.get(name)
            invalid = f' aria-invalid="true" aria-describedby="id_{name}_error"' if errors else ""
            if choices is None:  # a date
                shown = f' value="{escape(value)}"' if value else ""
                widget = f'<input type="date" name="{name}"{shown}{invalid} id="id_{name}">'
            else:
                widget = f'<select name="{name}"{invalid} id="id_{name}">{select_options(choices, value)}</select>'
            label = str(field.label or pretty_name(name))
            # The names are the form's own field names; the value and options are escaped above.
            found.append(Control(name, label, value, errors, widget=mark_safe(widget)))
        return found


def _credits_field(form: forms.Form, name: str, *, required: bool) -> int | None:
    """A credits amount typed by a person ("5000", "2.5"), as millicredits; errors added to the form."""
    raw = (form.cleaned_data.get(name) or "").strip().replace(",", "")
    if not raw:
        if required:
            form.add_error(name, "Enter a number of credits.")
        return None
    try:
        amount = credits(raw)
    except ValueError:
        form.add_error(name, "Enter a number of credits, e.g. 5000 or 2.5.")
        return None
    if amount < 0 or (required and amount == 0):
        form.add_error(name, "Enter a positive number of credits.")
        return None
    return amount


class AutoTopUpForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Turn on auto top-up")
    threshold = forms.CharField(
        label="When the balance falls below (credits)",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "20000"}),
    )
    pack = forms.ChoiceField(label="Buy this pack", choices=())
    monthly_limit = forms.IntegerField(label="At most this many times a month", min_value=1, max_value=31)

    def __init__(self, *args, packs: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pack"].choices = packs

    def clean(self):
        cleaned = super().clean()
        cleaned["threshold_millicredits"] = _credits_field(self, "threshold", required=True)
        return cleaned


class BudgetForm(forms.Form):
    budget = forms.CharField(
        required=False,
        label="Monthly budget (credits)",
        help_text="Charges beyond this in a billing period are refused. Leave empty for no budget.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "no budget"}),
    )

    def clean(self):
        cleaned = super().clean()
        cleaned["budget_millicredits"] = _credits_field(self, "budget", required=False)
        return cleaned
