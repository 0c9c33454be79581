"""Every number and string a person types is held to one rule and one bound where it is parsed.

Each case here was a 500 (a database error) or was accepted wrongly before the bounds: it must
be a clear error on its field, with nothing written.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.bounds import BIGINT_MAX, id_parsed, whole_number
from billing.credits import MAX_CREDITS, MAX_MILLICREDITS, CreditsInputError, credits, credits_input
from billing.csv_download import csv_safe
from billing.models import Activity, AutoTopUp, Invitation, LedgerEntry, SpecialistCap, Workspace
from billing.services import charge, credits_adjust
from tests.conftest import fund
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def owner(client, workspace):
    user = workspace.memberships.get().user
    client.force_login(user)
    return user


def _state(workspace: Workspace) -> tuple:
    """What a refused form must leave as it was."""
    workspace.refresh_from_db()
    return (
        LedgerEntry.objects.count(),
        list(SpecialistCap.objects.values_list("specialist_id", "daily_cap")),
        workspace.monthly_budget,
        list(AutoTopUp.objects.values_list("threshold", "enabled")),
        Activity.objects.count(),
        Invitation.objects.count(),
        get_user_model().objects.count(),
    )


# --- The one rule for credits ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "milli"),
    [
        ("5000", 5_000_000),
        ("2.5", 2_500),
        ("0.001", 1),
        ("1,500", 1_500_000),
        ("1,234,567.5", 1_234_567_500),
        (" 7 ", 7_000),
        ("1.5000", 1_500),  # trailing zeros past the thousandth add nothing
        ("1000000000", MAX_MILLICREDITS),
        ("-0", 0),
    ],
)
def test_amounts_people_write_are_read_exactly(text, milli):
    assert credits_input(text) == milli


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("12,5", "groups of three digits"),  # was 125 credits: a decimal comma must not vanish
        ("1,23", "groups of three digits"),
        ("1,2345", "groups of three digits"),
        (",500", "groups of three digits"),
        ("１２３", "digits 0 to 9"),  # was 123: full-width digits
        ("٣", "digits 0 to 9"),
        ("²", "digits 0 to 9"),
        ("1e309", "e.g. 5000 or 2.5"),
        ("1e400", "e.g. 5000 or 2.5"),
        ("nan", "e.g. 5000 or 2.5"),
        ("inf", "e.g. 5000 or 2.5"),
        ("1_000", "e.g. 5000 or 2.5"),
        ("0x10", "e.g. 5000 or 2.5"),
        ("5 000", "e.g. 5000 or 2.5"),
        ("", "e.g. 5000 or 2.5"),
        ("\x00", "e.g. 5000 or 2.5"),
        ("0.0001", "three decimals at most"),
        ("99999999999999999999999", "at most 1,000,000,000 credits"),
        ("9223372036854775807", "at most 1,000,000,000 credits"),
        ("1000000000.001", "at most 1,000,000,000 credits"),
        ("1,000,000,000,000", "at most 1,000,000,000 credits"),
        ("9" * 10_000, "at most 1,000,000,000 credits"),
        ("-1", "0 or more credits"),
    ],
)
def test_anything_else_is_refused_saying_why(text, why):
    with pytest.raises(CreditsInputError, match=why.replace(".", r"\.")):
        credits_input(text)


def test_the_bound_is_signed_for_signed_amounts_and_positive_for_positive_ones():
    assert credits_input("-1,000,000,000", minimum=-MAX_MILLICREDITS) == -MAX_MILLICREDITS
    with pytest.raises(CreditsInputError, match="from -1,000,000,000 to 1,000,000,000 credits"):
        credits_input("-1000000000.001", minimum=-MAX_MILLICREDITS)
    with pytest.raises(CreditsInputError, match="positive"):
        credits_input("0", minimum=1)
    with pytest.raises(CreditsInputError, match="without separators"):
        credits_input("1,500", grouped=False)


def test_the_bound_leaves_room_for_sums_in_a_bigint_column():
    assert MAX_MILLICREDITS == MAX_CREDITS * 1_000
    assert MAX_MILLICREDITS * 1_000_000 < BIGINT_MAX  # a million amounts at the bound still add up


def test_code_amounts_hold_the_same_rule_and_a_bigint():
    assert credits("1,500") == credits(1_500) == 1_500_000
    for bad in ("１２３", "12,5", "1e3", 0.7, True, "9" * 40):
        with pytest.raises(ValueError):
            credits(bad)


# --- Ids and whole numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        (42, 42),
        (str(BIGINT_MAX), BIGINT_MAX),
        (str(BIGINT_MAX + 1), None),
        ("0", None),
        ("-1", None),
        ("abc", None),
        ("²", None),
        ("١٢", None),
        (" 4", None),
        ("4.0", None),
        ("9" * 5_000, None),  # int() would refuse it with a ValueError
        (None, None),
        (True, None),
        ("", None),
    ],
)
def test_an_id_is_ascii_digits_within_bigint(raw, expected):
    assert id_parsed(raw) == expected


def test_a_whole_number_holds_its_range():
    assert whole_number("0") == 0 and whole_number("31", high=31) == 31
    assert whole_number("32", high=31) is None and whole_number("5", low=6) is None


# --- The pages' forms: each was a 500 or a wrong value -----------------------------------------


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        ("1e309", "e.g. 5000 or 2.5"),
        ("99999999999999999999999", "at most 1,000,000,000 credits"),
        ("9223372036854775807", "at most 1,000,000,000 credits"),
        ("１２３", "digits 0 to 9"),
        ("12,5", "groups of three digits"),
    ],
)
def test_a_daily_cap_past_the_bound_is_an_error_on_the_field(client, owner, workspace, cap, message):
    before = _state(workspace)
    response = client.post(reverse("billing:caps"), {"specialist": "outreach", "daily_cap": cap})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert 'id="cap-daily_cap_error"' in response.content.decode()
    assert _state(workspace) == before


def test_the_largest_cap_is_saved(client, owner, workspace):
    response = client.post(reverse("billing:caps"), {"specialist": "outreach", "daily_cap": "1,000,000,000"})
    assert response.status_code == 302
    assert SpecialistCap.objects.get(workspace=workspace).daily_cap == MAX_MILLICREDITS


SPENDING = reverse("billing:settings_spending")


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("99999999999999999999", "at most 1,000,000,000 credits"),
        ("1,000,000,000,000", "at most 1,000,000,000 credits"),  # was accepted
        ("0", "positive"),
        ("１２３", "digits 0 to 9"),
    ],
)
def test_an_auto_top_up_threshold_past_the_bound_is_an_error_on_the_field(client, owner, workspace, threshold, message):
    before = _state(workspace)
    form = {"action": "auto_top_up", "threshold": threshold, "pack": "100k", "monthly_limit": "3"}
    response = client.post(SPENDING, form)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert _state(workspace) == before


@pytest.mark.parametrize("limit", ["１", "99999999999999999999", "1e1", "-1"])
def test_the_monthly_limit_is_a_whole_number_in_ascii_digits(client, owner, workspace, limit):
    before = _state(workspace)
    form = {"action": "auto_top_up", "threshold": "20000", "pack": "100k", "monthly_limit": limit}
    assert client.post(SPENDING, form).status_code == 422
    assert _state(workspace) == before


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("1e400", "e.g. 5000 or 2.5"),
        ("99999999999999999999999999", "at most 1,000,000,000 credits"),
        ("12,5", "groups of three digits"),  # was saved as 125 credits
        ("１２３", "digits 0 to 9"),  # was saved as 123 credits
    ],
)
def test_a_monthly_budget_past_the_bound_or_misread_is_an_error_on_the_field(client, owner, workspace, budget, message):
    before = _state(workspace)
    response = client.post(SPENDING, {"action": "budget", "budget": budget})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert _state(workspace) == before


def test_an_invitation_to_an_address_longer_than_its_column_is_refused(client, owner, workspace):
    before = _state(workspace)
    email = "a" * 245 + "@example.io"  # 256 characters: the column holds 254
    response = client.post(reverse("billing:settings_members"), {"email": email, "role": "member"})
    assert response.status_code == 422
    assert "at most 254 characters" in response.content.decode()
    assert _state(workspace) == before


def test_a_sign_up_with_an_address_longer_than_a_username_is_refused(client, workspace):
    before = _state(workspace)
    email = "a" * 251 + "@example.io"  # 262 characters; the username (the email) holds 150
    form = {"email": email, "password": PASSWORD, "workspace_name": "Mine"}
    response = client.post(reverse("billing:signup"), form)
    assert response.status_code == 422
    assert "at most 150 characters" in response.content.decode()
    assert _state(workspace) == before


def test_a_sign_up_with_a_workspace_name_longer_than_its_column_is_refused(client, workspace):
    before = _state(workspace)
    form = {"email": "new@example.test", "password": PASSWORD, "workspace_name": "w" * 121}
    response = client.post(reverse("billing:signup"), form)
    assert response.status_code == 422
    assert "at most 120 characters" in response.content.decode()
    assert _state(workspace) == before


@pytest.mark.parametrize("value", ["abc", "", "²", str(BIGINT_MAX + 1), "9" * 5_000])
def test_switching_to_something_that_is_not_a_workspace_id_is_not_found(client, owner, value):
    response = client.post(reverse("billing:workspace_switch"), {"workspace": value})
    assert response.status_code == 404


def test_switching_needs_a_workspace_of_ones_own(client, owner):
    other = WorkspaceFactory()
    assert client.post(reverse("billing:workspace_switch"), {"workspace": other.pk}).status_code == 404


@pytest.mark.parametrize("before", ["abc", "²", str(BIGINT_MAX + 1), "9" * 5_000, "-5"])
def test_a_cursor_that_is_not_an_entry_id_is_the_first_page(client, owner, before):
    for name in ("billing:transactions", "billing:settings_billing"):
        assert client.get(reverse(name), {"before": before}).status_code == 200


# --- The CSV exports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        *((formula, f"'{formula}") for formula in ["=1+1", "+1+1", "-1+1", "@x", "\tx", "\rx", "-", "+", "-1e3"]),
        *((plain, plain) for plain in ["", "x=1", "-1.5", "+1.5", "-700", "12", "0.001"]),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_kept_as_text_and_numbers_stay_numbers(cell, shown):
    assert csv_safe(cell) == shown


def _rows(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.parametrize(
    "query",
    [{"date_from": "not-a-date"}, {"date_to": "2026-13-01"}, {"date_from": "0001-01-01"}, {"specialist": "nobody"}],
)
def test_an_export_with_an_invalid_filter_refuses_with_the_filters_error(client, owner, workspace, query):
    fund(workspace, topup=100)
    response = client.get(reverse("billing:transactions_csv"), query)
    assert response.status_code == 422
    assert response["Content-Type"].startswith("text/html")
    assert 'role="alert"' in response.content.decode()
    assert "Export CSV" not in response.content.decode()  # no link that would export everything


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("formula", FORMULAS)
def test_the_customers_export_keeps_formulas_as_text(client, owner, workspace, formula):
    fund(workspace, topup=10_000)
    charge(workspace=workspace, action="gmail-send", idempotency_key="k1", lead=formula)
    rows = _rows(client.get(reverse("billing:transactions_csv")))
    header, usage = rows[0], rows[1]
    assert usage[header.index("Lead")] == f"'{formula}"
    assert usage[header.index("Credits")] == usage[header.index("Plan bucket (credits)")] == "-200"  # still numbers


@pytest.mark.parametrize("formula", FORMULAS[:4])  # a description or note is stripped: it never starts with a tab
def test_the_staff_export_keeps_formulas_as_text_the_same_way(client, workspace, formula):
    staff = UserFactory(is_staff=True, is_superuser=True)
    fund(workspace, topup=10_000)
    credits_adjust(
        workspace_id=workspace.pk,
        bucket="top_up",
        amount=credits(5),
        description=formula,
        internal_note=formula,
        actor=staff,
        idempotency_key="a",
    )
    client.force_login(staff)
    rows = _rows(client.get(reverse("admin:billing_ledgerentry_export")))
    header, adjustment = rows[0], rows[1]
    assert adjustment[header.index("Reason")] == adjustment[header.index("Internal note")] == f"'{formula}"
    assert adjustment[header.index("Top-up (credits)")] == "+5"


# --- The services hold the same bound for callers that are not forms ---------------------------


def test_the_services_refuse_amounts_past_the_bound_naming_the_field(workspace):
    from billing.errors import InvalidRequest
    from billing.services import budget_set, cap_set
    from billing.services.auto_topup import auto_topup_set

    owner = workspace.memberships.get().user
    before = _state(workspace)
    calls = [
        ("daily_cap", lambda: cap_set(workspace=workspace, specialist="outreach", daily_cap=MAX_MILLICREDITS + 1)),
        ("budget", lambda: budget_set(workspace=workspace, monthly_budget=BIGINT_MAX)),
        (
            "threshold",
            lambda: auto_topup_set(
                workspace=workspace, actor=owner, enabled=False, threshold=10**20, pack_key="100k", monthly_limit=1
            ),
        ),
    ]
    for field, call in calls:
        with pytest.raises(InvalidRequest) as refused:
            call()
        assert refused.value.details["field"] == field and "1,000,000,000" in refused.value.message
    assert _state(workspace) == before


@pytest.mark.parametrize("session_id", ["cs_\x00", "cs_" + "x" * 300, ""])
def test_a_checkout_return_naming_no_storable_session_is_not_found(client, owner, session_id):
    response = client.get(reverse("billing:checkout_return"), {"session_id": session_id})
    assert response.status_code == 404


def test_lengths_come_from_the_columns_that_store_them():
    from api.credentials import MAX_NAME_LENGTH
    from api.models import ApiKey
    from billing.bounds import column_length
    from billing.services.charging import MAX_KEY_LENGTH, MAX_LEAD_LENGTH

    assert MAX_NAME_LENGTH == ApiKey._meta.get_field("name").max_length == column_length(ApiKey, "name")
    assert (
        LedgerEntry._meta.get_field("idempotency_key").max_length,
        LedgerEntry._meta.get_field("lead").max_length,
    ) == (MAX_KEY_LENGTH, MAX_LEAD_LENGTH)


def test_refusals_are_pages_that_say_what_happened(client, owner, workspace):
    member = UserFactory()
    workspace.memberships.create(user=member, role="member")
    missing = client.post(reverse("billing:workspace_switch"), {"workspace": "abc"})
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.content.decode()
    assert "Sign out" in missing.content.decode()  # the site's own layout, signed in
    client.force_login(member)
    denied = client.post(reverse("billing:settings_byok"), {"api_key": "sk-ant-x"})
    assert denied.status_code == 403
    assert "Only the workspace&#x27;s owners and admins can change the BYOK key." in denied.content.decode()


def test_the_server_error_page_renders_without_a_request():
    from django.template.loader import render_to_string

    assert "Something went wrong" in render_to_string("500.html")


# --- What the hunt for 500s found beyond the list (tests/test_hostile_input.py) --------


@pytest.mark.parametrize("name", ["billing:settings_billing", "billing:transactions", "billing:transactions_csv"])
def test_a_tool_filter_no_action_could_have_is_a_filter_error(client, owner, name):
    for tool in ("a\x00b", "x" * 100):
        response = client.get(reverse(name), {"action": tool})
        assert response.status_code in (200, 422)
        assert "Select a valid choice" in response.content.decode()


def test_the_portal_button_without_payments_says_so(client, owner):
    response = client.post(reverse("billing:billing_portal"))
    assert response.status_code == 200
    assert "manage your plan and the card on file" in response.content.decode()


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "line\nbreak"])
def test_an_api_key_name_with_control_characters_is_refused(client, owner, workspace, name):
    from api.models import ApiKey

    response = client.post(reverse("api_keys:settings_api_keys"), {"name": name})
    assert response.status_code == 422 and "control characters" in response.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("next_url", ["²", "abc", "billing:settings_byok", "https://evil.example/", "//evil.example/"])
def test_a_sign_up_goes_to_its_next_page_only_when_it_is_a_path_here(client, next_url):
    form = {"email": "new@example.test", "password": PASSWORD, "workspace_name": "Mine", "next": next_url}
    response = client.post(reverse("billing:signup"), form)
    assert response.status_code == 302 and response["Location"] == reverse("billing:settings_billing")


def test_a_sign_up_follows_a_next_path_on_this_site(client):
    form = {"email": "new@example.test", "password": PASSWORD, "workspace_name": "Mine", "next": "/settings/byok/"}
    assert client.post(reverse("billing:signup"), form)["Location"] == "/settings/byok/"


@pytest.fixture
def superuser(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.parametrize("key", ["a\x00b", "k" * 100])
@pytest.mark.parametrize("page", ["change", "history", "delete"])
def test_an_admin_object_id_no_row_could_have_is_not_found(client, superuser, key, page):
    from urllib.parse import quote

    response = client.get(f"/admin/billing/specialist/{quote(key)}/{page}/")
    if page == "delete":  # nothing in the catalog is ever deleted
        assert response.status_code == 403
    else:  # Django's "does not exist" message, back to the admin's index
        assert (response.status_code, response["Location"]) == (302, reverse("admin:index"))


@pytest.mark.parametrize("selected", ["", "abc", "a\x00b", str(BIGINT_MAX + 1)])
@pytest.mark.parametrize(
    ("url", "action"), [("/admin/auth/user/", "delete_selected"), ("/admin/api/apikey/", "revoke")]
)
def test_an_admin_action_on_rows_that_are_not_ids_takes_no_action(client, superuser, url, action, selected):
    users = get_user_model().objects.count()
    form = {"action": action, "select_across": "0", "index": "0", "_selected_action": selected}
    response = client.post(url, form, follow=True)
    assert response.status_code == 200 and "no action was taken" in response.content.decode()
    assert get_user_model().objects.count() == users
