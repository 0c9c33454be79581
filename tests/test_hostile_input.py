"""Hostile input on every URL and every form, as every role: no answer is a 5xx, a refusal changes nothing, and
no one changes a workspace they are not in (another workspace exists, with its own members, invitation and key).

The URL patterns come from the resolver and the forms from the pages themselves, so a new page, form or field
is covered without a change here. The values come from hypothesis: numbers past every range, Unicode digits,
NUL, 10,000 characters, emoji, HTML, a field missing or repeated. Each request runs in a savepoint rolled back
after it, so every example starts from the same database and a database error cannot poison the next one.
Failures are collected across every page and form, and the test fails once, listing each distinct one.

CI runs a bounded number of generated examples per URL or form and role (the seeded ones always run);
run it longer with ``HOSTILE_EXAMPLES=200``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

import pytest
from django import urls
from django.apps import apps
from django.core import mail
from django.http import HttpResponse
from django.test import Client
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from api.credentials import api_key_create
from api.models import ApiKey
from billing.models import Activity, Invitation, Membership, Workspace
from billing.services import charge, invitation_create
from tests.billing.test_views import team  # noqa: F401  (owner, admin and member of one workspace, and a stranger)
from tests.conftest import fund, second_factor_passed
from tests.factories import UserFactory
from tests.hostile.probe import PROJECT, Prober
from tests.hostile.site_map import Form, Route, Site, route_paths

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "15"))  # generated examples per URL or form and role

# --- The values --------------------------------------------------------------------------------------------

LONG = "9" * 10_000  # 10,000 characters, and a number past int()'s 4,300 digits
# Each family once, seeded into every form field and URL so the deterministic run always tries them.
SEEDS = [
    "9223372036854775807",  # bigint's largest
    "9223372036854775808",
    "99999999999999999999999999",
    "1e309",  # past a float
    "1e400",
    "nan",
    "inf",
    "-0",
    "１２３",  # full-width digits
    "٣",  # Arabic-Indic three
    "²",  # a digit to str.isdigit(), not to int()
    "a\x00b",
    LONG,
    "😀🔥",
    "<script>alert(1)</script>",
    "",
    " ",
    "abc",
    "a" * 250 + "@x.io",  # a valid address longer than any column holding one
]
HTML = ["<b>x</b>", "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}", "&amp;&lt;"]


def hostile() -> st.SearchStrategy[str]:
    """Text past what a field expects: the seeds, and each family generated."""
    return st.one_of(
        st.sampled_from(SEEDS),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.floats().map(repr),  # nan, inf, -0.0 and the rest
        st.builds("{}e{}".format, st.integers(-9, 9), st.integers(-999, 999)),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=8),  # ١٢٣, １２３, ², ½
        st.text(max_size=12).map(lambda text: f"{text}\x00"),
        st.integers(4_000, 10_000).map(lambda n: "9" * n),  # past int()'s 4,300 digits
        st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=4),
        st.sampled_from(HTML),
        st.integers(140, 330).map(lambda n: "a" * (n - 5) + "@x.io"),
        st.text(max_size=30),
    )


HOSTILE = hostile()
# Fewer for the URL walk, whose requests carry every key at once: each family once.
WALK_SEEDS = ["99999999999999999999999999", "1e400", "nan", "-0", "１２３", "a\x00b", LONG, "😀", HTML[2], "", "abc"]
# What goes in a URL's parameters, besides the values seen on the pages and another workspace's ids.
PATH_VALUES = ["0", "99999999999999999999", "abc", "²", "a\x00b", "😀🔥", "x" * 300, "1e309", "1/2"]
ADMIN_PATH_VALUES = ["99999999999999999999", "a\x00b"]  # the admin's are Django's own code, 22 times over
# Query and body keys the pages read; each pattern adds those its own pages' links and forms use.
KEYS = [
    "before", "date_from", "date_to", "specialist", "action", "kind", "session_id", "next", "workspace", "seats",
    "amount", "budget", "threshold", "daily_cap", "email", "role", "name", "q", "o", "p", "e", "limit", "cursor",
]  # fmt: skip

# --- Hypothesis: one run per route or form and role, recording instead of failing ---------------------------


def run(test, seeds, examples: int):
    for seed in seeds:
        test = example(seed)(test)
    settings(
        max_examples=examples,
        derandomize=True,  # the same examples in every CI run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # nothing fails inside (failures are recorded): nothing to shrink
        suppress_health_check=list(HealthCheck),
    )(test)()


def rotations(keys: list[str], values: list[str]) -> list[tuple[str, tuple]]:
    """One request per value (POST, GET, POST…), every key in each with a different value: each key gets each once."""
    return [
        ("GET" if i % 2 else "POST", tuple((key, values[(i + j) % len(values)]) for j, key in enumerate(keys)))
        for i in range(len(values))
    ]


def fuzz_route(prober: Prober, role: str, route: Route, paths: list[str], *, seeds: list[str] | None, examples: int):
    """GET and POST the route's paths with hostile query strings and bodies; ``seeds``: try each path and these."""
    keys = sorted(route.keys | set(KEYS))

    @given(
        st.tuples(
            st.sampled_from(paths),
            st.sampled_from(["GET", "POST"]),
            st.lists(st.tuples(st.sampled_from(keys) | HOSTILE, HOSTILE), max_size=6).map(tuple),
            st.booleans(),
        )
    )
    def probe(request):
        path, method, sent, htmx = request
        prober.send(role, method, path, sent, htmx=htmx)

    real = route.real or paths[:1]
    tried = [(path, method, (), False) for path in real for method in ("GET", "POST")]
    if seeds is not None:
        tried += [(path, "GET", (), False) for path in paths if path not in real]
        tried += [(real[0], method, sent, False) for method, sent in rotations(keys, seeds)]
    run(probe, tried, examples)


def fuzz_form(prober: Prober, role: str, form: Form, *, sweep: list[str], examples: int):
    """Submit the form with hostile values: each field in turn with the rest as a person fills them, then at random.

    Generated examples treat each field independently: kept, another of its options, hostile, missing or twice.
    """
    real = form.real()
    treat = ["real", "real", "option", "hostile", "hostile", "missing", "twice"]

    @st.composite
    def submissions(draw):
        sent = []
        for name, control in form.fields.items():
            how, value = draw(st.sampled_from(treat)), control.plausible()
            if how == "real" and control.kind == "checkbox" and not control.checked:
                continue
            if how == "option" and control.options:
                value = draw(st.sampled_from(control.options))
            elif how == "twice":
                sent.append((name, value))
                value = draw(HOSTILE)
            elif how == "hostile":
                value = draw(HOSTILE)
            elif how == "missing":
                continue
            sent.append((name, value))
        return tuple(sent), form.htmx and draw(st.booleans())

    @given(submissions())
    def probe(submission):
        sent, htmx = submission
        prober.send(role, form.method, form.path, sent, htmx=htmx)

    seeds = [(tuple(real), False)]
    for name in form.swept() if sweep else []:
        seeds.append((tuple((n, v) for n, v in real if n != name), False))  # the field missing
        seeds.append(((*real, (name, "abc")), False))  # the field twice
        others = [(n, v) for n, v in real if n != name]
        seeds += [((*others, (name, value)), False) for value in sweep]
    run(probe, seeds, examples)


# --- The test ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """Who probes a part of the site, and how hard."""

    roles: list[str]
    seeded: set[str]  # the roles that also try each hostile path and the seeded query strings and bodies
    walk_seeds: list[str]  # each query and body key gets each of these once
    form_seeds: list[str]  # each field of a small form gets each of these in turn, as the role that saw it
    examples: dict[str, int] = field(default_factory=dict)  # generated examples per role (else EXAMPLES)


PARTS = {
    "site": Part(["owner", "admin", "member", "anonymous"], {"owner", "anonymous"}, WALK_SEEDS, SEEDS),
    "api": Part(["anonymous", "api_key"], {"api_key"}, WALK_SEEDS, SEEDS),
    # The admin's 135 URLs and dozens of forms are mostly Django's own views and model forms, 22 times
    # over: a few examples each, and a seed of each family for the small forms of the project's own apps.
    "admin": Part(["staff", "anonymous"], {"staff"}, [], WALK_SEEDS, {"staff": 2, "anonymous": 1}),
}
SMALL_FORM = 5  # fields; a larger one is a model form, which Django validates field by field


def ours(route: Route) -> bool:
    """Whether the route runs the project's code: all but the admin of Django's and other libraries' apps."""
    if route.section != "admin":
        return True
    app = next((app for app in apps.get_app_configs() if route.route.startswith(f"admin/{app.label}/")), None)
    return app is not None and app.path.startswith(str(PROJECT))


@pytest.fixture
def world(team, settings, django_capture_on_commit_callbacks):  # noqa: F811
    """The team's workspace with money, history, a pending invitation and an API key; another with its own rows."""
    settings.API_RATE_LIMIT = 0  # thousands of requests a minute are the point here
    settings.STRIPE_WEBHOOK_SECRET = "whsec_hostile"  # else the webhook answers 503 by design, to anything
    ws, other, owner = team["ws"], team["other"], team["owner"]
    fund(ws, topup=500)
    Workspace.objects.filter(pk=ws.pk).update(stripe_customer_id="cus_hostile")  # has bought: auto top-up can be on
    charge(workspace=ws, action="linkedin-dm", idempotency_key="hostile-dm")
    with django_capture_on_commit_callbacks(execute=True):
        for workspace, inviter in ((ws, owner), (other, team["stranger"])):
            invitation_create(
                workspace=workspace,
                email=f"invitee{workspace.pk}@example.test",
                role="member",
                invited_by=inviter,
                link_base="http://testserver/invitations",
            )
    invitation_link = re.search(r"http://testserver(/invitations/\S+/)", mail.outbox[0].body)[1]
    _, secret = api_key_create(workspace=ws, name="Our scripts", actor=owner)
    api_key_create(workspace=other, name="Theirs", actor=team["stranger"])
    staff = UserFactory(email="root@example.test", is_staff=True, is_superuser=True)
    clients = {"anonymous": Client(raise_request_exception=False)}
    clients["api_key"] = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {secret}"})
    for role, user in (("owner", owner), ("admin", team["admin"]), ("member", team["member"]), ("staff", staff)):
        clients[role] = Client(raise_request_exception=False)
        clients[role].force_login(user)
        if user.is_staff:
            second_factor_passed(clients[role], user)
    foreign = [other, Membership.objects.get(workspace=other), Invitation.objects.get(workspace=other)]
    foreign_ids = [str(row.pk) for row in [*foreign, ApiKey.objects.get(workspace=other)]]
    logging.disable(logging.ERROR)  # thousands of 4xx and the 500s: the report says what broke, once
    try:
        yield clients, [invitation_link], other.pk, foreign_ids
    finally:
        logging.disable(logging.NOTSET)


def test_no_hostile_input_is_a_5xx_or_changes_what_it_may_not(world):
    clients, start, elsewhere, foreign_ids = world
    prober, started = Prober(clients, elsewhere=elsewhere, let_elsewhere={"staff"}), time.monotonic()
    try:
        site = Site(prober)
        for role in ("owner", "admin", "member", "anonymous", "staff"):
            site.explore(role, start)
        for route in site.routes:  # every URL pattern
            part = PARTS[route.section]
            paths = route_paths(route, ADMIN_PATH_VALUES if route.section == "admin" else foreign_ids + PATH_VALUES)
            for role in part.roles:
                seeds = part.walk_seeds if role in part.seeded else None
                fuzz_route(prober, role, route, paths, seeds=seeds, examples=part.examples.get(role, EXAMPLES))
        forms = list(site.forms.values())
        while forms:  # every form on every page, and on the pages the forms answer with (a confirmation's)
            found_by, form, route = forms.pop(0)
            part = PARTS[route.section]
            swept = ours(route) and len(form.swept()) <= SMALL_FORM
            for role in part.roles:
                sweep = part.form_seeds if swept and role == found_by else []
                fuzz_form(prober, role, form, sweep=sweep, examples=part.examples.get(role, EXAMPLES))
            _, html = prober.send(found_by, form.method, form.path, form.real())
            forms += site.read(found_by, form.path, html)[1]
    finally:
        prober.close()
    if prober.failures:
        pytest.fail(
            f"{len(prober.failures)} distinct failures in {prober.requests} requests to {len(site.routes)} URL patterns"
            f" and {len(site.forms)} forms ({time.monotonic() - started:.0f} s):\n{prober.report()}",
            pytrace=False,
        )


# The prober itself must be able to fail: views that do what the test looks for, on this module's URLs.


def write(request, status: int):
    Activity.objects.create(workspace_id=request.POST["workspace"], verb=Activity.Verb.BUDGET_CHANGED, detail="x")
    return HttpResponse(status=status)


def crash(request):
    raise ValueError("the view broke")


urlpatterns = [urls.path("write/<int:status>/", write), urls.path("crash/", crash)]


@pytest.mark.urls(__name__)
def test_the_prober_reports_a_crash_a_refusal_that_wrote_and_a_change_to_another_workspace(world):
    clients, _, elsewhere, _ = world
    here = Workspace.objects.exclude(pk=elsewhere).get().pk
    activities = Activity.objects.count()
    prober = Prober(clients, elsewhere=elsewhere, let_elsewhere={"staff"})
    try:
        assert prober.send("owner", "POST", "/write/403/", [("workspace", str(here))])[0] == 403
        assert prober.send("owner", "POST", "/write/200/", [("workspace", str(here))])[0] == 200  # allowed
        assert prober.send("admin", "POST", "/write/200/", [("workspace", str(elsewhere))])[0] == 200
        assert prober.send("staff", "POST", "/write/200/", [("workspace", str(elsewhere))])[0] == 200  # allowed
        assert prober.send("member", "GET", "/crash/")[0] == 500
    finally:
        prober.close()
    found = [(f.role, f.view, f.problem, f.site) for failures in prober.failures.values() for f in failures]
    assert found == [
        ("owner", f"{__name__}.write", "refused, but changed activity", ""),
        ("admin", f"{__name__}.write", "changed another workspace's activity", ""),
        (
            "member",
            f"{__name__}.crash",
            "ValueError: the view broke",
            f"tests/test_hostile_input.py:{crash.__code__.co_firstlineno + 1}",
        ),
    ]
    assert Activity.objects.count() == activities  # each request was rolled back
    assert "1. POST /write/403/ as owner" in prober.report()
