"""Send a request in a savepoint, check the answer, roll back; record a 5xx, and a change the request may not make."""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections import defaultdict
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

from django.contrib.auth import get_user_model
from django.core.signals import got_request_exception
from django.db import DatabaseError, transaction
from django.db.models import Count, QuerySet
from django.test import Client
from django.urls import Resolver404, resolve

from api.models import ApiKey
from billing.models import (
    Activity,
    AutoTopUp,
    Hold,
    Invitation,
    LedgerEntry,
    Membership,
    Purchase,
    SpecialistCap,
    Wallet,
    Workspace,
)
from billing.selectors import Read, reads_run

PROJECT = Path(__file__).resolve().parents[2]
LOGIN_PAGES = ("/accounts/login/", "/admin/login/")  # where a refusal may send the anonymous


def shown(value: str) -> str:
    """A value as the report prints it: quoted and escaped, and cut short past 40 characters."""
    return repr(value) if len(value) <= 40 else f"{value[:12]!r}…({len(value)} chars)"


def shown_path(path: str) -> str:
    """A path as the report prints it: control characters escaped, and cut short past 100 characters."""
    path = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
    return path if len(path) <= 100 else f"{path[:60]}…({len(path)} chars)"


# --- What the database holds ------------------------------------------------------------------------------


def state_queries(workspace_id: int | None = None) -> dict[str, QuerySet]:
    """What a refused request must leave as it was; with ``workspace_id``, that workspace's rows only."""

    def rows(model, *columns: str, by: str = "workspace") -> QuerySet:
        found = model.objects.order_by("pk")
        return (found if workspace_id is None else found.filter(**{by: workspace_id})).values_list(*columns)

    counted = {"ledger entries": LedgerEntry, "activity": Activity, "holds": Hold, "purchases": Purchase}
    state = {
        name: rows(model, "workspace").order_by("workspace").annotate(n=Count("pk")) for name, model in counted.items()
    }
    state["wallets"] = rows(
        Wallet, "pk", "plan_balance", "topup_balance", "revision", "period_spend", "day_spend", "holds"
    )
    state["workspace settings"] = rows(
        Workspace, "pk", "name", "plan", "seats", "monthly_budget", "byok_key_hint", "time_zone", "closed_at", by="pk"
    )
    state["caps"] = rows(SpecialistCap, "workspace", "specialist", "daily_cap")
    state["auto top-up"] = rows(AutoTopUp, "pk", "enabled", "threshold", "pack", "monthly_limit")
    state["members"] = rows(Membership, "pk", "workspace", "user", "role")
    state["invitations"] = rows(Invitation, "pk", "workspace", "email", "role", "revoked_at")
    state["api keys"] = rows(ApiKey, "pk", "workspace", "name", "revoked_at")
    if workspace_id is None:
        user_columns = ("pk", "username", "email", "password", "is_active", "is_staff", "is_superuser")
        state["users"] = get_user_model().objects.order_by("pk").values_list(*user_columns)
    return state


class DatabaseState:
    """The rows of ``state_queries()``, read in one round trip: it runs after most requests, so compiled once."""

    def __init__(self, workspace_id: int | None = None):
        queries = state_queries(workspace_id)
        self.names = list(queries)
        self.reads = [Read(*queryset.query.sql_with_params(), list) for queryset in queries.values()]
        self.baseline = self.read()

    def read(self) -> dict[str, list[tuple]]:
        return dict(zip(self.names, reads_run(*self.reads), strict=True))

    def changed(self) -> list[str]:
        """What differs from the state it was made in (a transaction broken by an error raises DatabaseError)."""
        return [name for name, rows in self.read().items() if rows != self.baseline[name]]


@dataclass
class Failure:
    """One request that went wrong: it crashed (5xx), or it was refused yet changed the database."""

    role: str
    request: str  # "POST /settings/billing/caps/", as the report prints it
    sent: list[tuple[str, str]]
    status: int
    problem: str  # "DataError: bigint out of range" or what a refusal changed
    site: str  # where it crashed (crash_site), or ""
    view: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two failures one: the view, the exception's type, and where it was raised (the spending
        page has two forms, and their two overflows are two bugs of one view and one exception type)."""
        return self.view, self.problem.split(":")[0], self.site

    def line(self) -> str:
        sent = [f"{name}={shown(value)}" for name, value in self.sent if name != "csrfmiddlewaretoken"]
        sent = ", ".join(sent[:8]) + (f" and {len(sent) - 8} more" if len(sent) > 8 else "") if sent else "(nothing)"
        return f"{self.request} as {self.role} ({self.view})\n     sent {sent}\n     -> {self.status} {self.problem}"


def crash_site(tb) -> str:
    """Where it broke: the innermost frame of the project's code, else of a library's above the database driver."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if f.filename.startswith(str(PROJECT)) and "/tests/" not in f.filename]
    ours = [f for f in ours if "site-packages" not in f.filename]
    theirs = [f for f in frames if not re.search(r"/django/db/|/psycopg/", f.filename)]
    frame = (ours or theirs or frames)[-1]
    return f"{re.sub(r'^.*/site-packages/|^' + re.escape(str(PROJECT)) + '/', '', frame.filename)}:{frame.lineno}"


class Prober:
    """Sends one request in a savepoint and records what went wrong: a 5xx, a refusal that changed data, or a
    change to the workspace ``elsewhere`` by a role not in ``let_elsewhere`` (none of its people is among them)."""

    def __init__(self, clients: dict[str, Client], *, elsewhere: int, let_elsewhere: set[str]):
        self.clients, self.let_elsewhere = clients, let_elsewhere
        self.failures: dict[tuple, list[Failure]] = defaultdict(list)
        self.requests = 0
        self.crash = None
        self.state, self.elsewhere = DatabaseState(), DatabaseState(elsewhere)
        got_request_exception.connect(self.caught)

    def close(self):
        got_request_exception.disconnect(self.caught)

    def caught(self, sender, **kwargs):
        self.crash = sys.exc_info()

    def send(self, role: str, method: str, path: str, sent=(), *, htmx=False) -> tuple[int, str]:
        """Send, check, roll back; answer the status and the page's HTML (or "")."""
        client = self.clients[role]
        cookies = {name: morsel.value for name, morsel in client.cookies.items()}
        headers = {"HX-Request": "true"} if htmx else {}
        url, query = quote(path, safe="/"), urlencode(sent)
        self.crash, self.requests = None, self.requests + 1
        savepoint = transaction.savepoint()
        try:
            if method == "GET":
                response = client.get(f"{url}?{query}" if query else url, headers=headers)
            elif path.startswith("/api/"):
                response = client.post(url, json.dumps(dict(sent)), content_type="application/json", headers=headers)
            else:
                response = client.post(url, query, content_type="application/x-www-form-urlencoded", headers=headers)
            try:  # a streamed response runs its view's code while it is read
                body = b"".join(response.streaming_content) if response.streaming else response.content
            except Exception:
                self.crash, body = sys.exc_info(), b""
            status = response.status_code
            failure = Failure(role, f"{method} {shown_path(path)}", list(sent), status, "", "", view_of(path))
            if self.crash:
                failure.problem = f"{self.crash[0].__name__}: {str(self.crash[1]).strip()}"
                failure.site = crash_site(self.crash[2])
                self.record(failure)
            elif status >= 500:
                failure.problem = "a 5xx, with no exception raised"
                self.record(failure)
            elif status >= 400 or response.get("Location", "").startswith(LOGIN_PAGES):
                self.compare(failure, self.state, "refused, but changed")
            elif role not in self.let_elsewhere:
                self.compare(failure, self.elsewhere, "changed another workspace's")
            html = "text/html" in response.get("Content-Type", "") and status == 200
            return status, body.decode(errors="replace") if html else ""
        finally:
            transaction.set_rollback(False)  # a view's database error is undone with the savepoint, just below
            transaction.savepoint_rollback(savepoint)
            transaction.savepoint_commit(savepoint)  # released, or thousands of them would nest
            client.cookies = SimpleCookie(cookies)  # signing out, in or up must not change who the next one is

    def compare(self, failure: Failure, state: DatabaseState, problem: str):
        """Record the request if ``state`` is not as it was before it."""
        try:
            changed = state.changed()
        except DatabaseError as error:
            failure.problem = (
                f"answered {failure.status}, leaving the transaction broken: {type(error).__name__}: {error}"
            )
        else:
            if not changed:
                return
            failure.problem = f"{problem} {', '.join(changed)}"
        self.record(failure)

    def record(self, failure: Failure):
        failure.problem = failure.problem.splitlines()[0][:200] if failure.problem else failure.problem
        self.failures[failure.key].append(failure)

    def report(self) -> str:
        """Each distinct failure: its simplest input, where it broke, and the other values that broke it too."""
        lines = []
        for n, found in enumerate(self.failures.values(), 1):
            first = min(found, key=lambda f: len(repr([v for k, v in f.sent if k != "csrfmiddlewaretoken"])))
            roles = ", ".join(sorted({f.role for f in found}))
            others = sorted({v for f in found for _, v in f.sent} - {v for _, v in first.sent}, key=len)[:4]
            also = f"; also with {', '.join(map(shown, others))}" if others else ""
            where = f"at {first.site}; " if first.site else ""
            lines.append(f"{n}. {first.line()}\n     {where}{len(found)} hits as {roles}{also}")
        return "\n".join(lines)


def view_of(path: str) -> str:
    try:
        match = resolve(path)
    except Resolver404:
        return "(no route)"
    return match.view_name or f"{match.func.__module__}.{match.func.__qualname__}"
