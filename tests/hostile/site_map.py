"""What the site has: every URL pattern (from the resolver) and every form and link on its pages (from their HTML)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from django.urls import Resolver404, URLResolver, get_resolver, resolve
from django.utils.regex_helper import normalize

from tests.billing.test_views import PASSWORD

if TYPE_CHECKING:
    from tests.hostile.probe import Prober

# --- Pages: their forms and links --------------------------------------------------------------------------

BUTTONS = ("button", "submit")  # a form sends the one that was clicked


@dataclass
class FormField:
    name: str
    kind: str  # the input's type, "select", "textarea" or "button"
    value: str  # what the page would send
    options: list[str] = field(default_factory=list)
    checked: bool = True  # a checkbox a browser would send

    def plausible(self) -> str:
        """What a person would send: the page's value, else a valid one for the kind."""
        if self.value or self.kind in ("hidden", *BUTTONS):
            return self.value
        if self.options:
            return next((option for option in self.options if option), self.options[0])
        defaults = {"email": "new@example.test", "password": PASSWORD, "number": "1", "date": "2026-01-15"}
        return defaults.get(self.kind, "Hostile test")


@dataclass
class Form:
    action: str
    method: str
    htmx: bool
    fields: dict[str, FormField] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.action).path)

    def real(self) -> list[tuple[str, str]]:
        """What a person sends: every field as the page fills it (or validly), but unchecked boxes, and one button."""
        sent, buttons = [], [f for f in self.fields.values() if f.kind in BUTTONS][:1]
        for f in self.fields.values():
            if (f.kind != "checkbox" or f.checked) and (f.kind not in BUTTONS or f in buttons):
                sent.append((f.name, f.plausible()))
        return sent

    def swept(self) -> list[str]:
        """The fields that get each seed in turn: not the CSRF token (the test client ignores it), nor buttons."""
        return [f.name for f in self.fields.values() if f.name != "csrfmiddlewaretoken" and f.kind not in BUTTONS]


class PageParser(HTMLParser):
    """A page's <form>s (action, method, every named control) and its links."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page, self.forms, self.links = page, [], []
        self.form: Form | None = None
        self.select: FormField | None = None
        self.text: FormField | None = None  # a <textarea> or an <option> without a value, taking its text

    def add(self, name: str, kind: str, value: str, *, checked: bool = True) -> FormField:
        found = self.form.fields.get(name)
        if found is None:
            found = self.form.fields[name] = FormField(name, kind, value, checked=checked)
        elif kind in ("radio", "checkbox") and checked and not found.checked:
            found.value, found.checked = value, True
        if kind in ("radio", "checkbox"):
            found.options.append(value)
        return found

    def handle_starttag(self, tag, attrs):
        a = {key: value or "" for key, value in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        elif tag == "form":
            action = urljoin(self.page, a.get("action") or self.page)
            self.form = Form(action, (a.get("method") or "get").upper(), htmx=any(k.startswith("hx-") for k in a))
            self.forms.append(self.form)
        elif self.form is None:
            return
        elif tag == "option" and self.select is not None:
            if "value" in a:
                self.select.options.append(a["value"])
            else:
                self.select.options.append("")
                self.text = self.select
            if "selected" in a:
                self.select.value = self.select.options[-1]
        elif not a.get("name"):
            return
        elif tag == "input" and a.get("type", "text").lower() not in ("file", "image", "reset"):
            kind = a.get("type", "text").lower()
            box = kind in ("checkbox", "radio")
            self.add(a["name"], kind, a.get("value") or ("on" if box else ""), checked=not box or "checked" in a)
        elif tag == "button":
            self.add(a["name"], "button", a.get("value", ""))
        elif tag == "select":
            self.select = self.add(a["name"], "select", "")
        elif tag == "textarea":
            self.text = self.add(a["name"], "textarea", "")

    def handle_data(self, data):
        if self.text is self.select and self.select is not None and self.select.options:
            self.select.options[-1] += data.strip()
        elif self.text is not None:
            self.text.value += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = self.select = self.text = None
        elif tag in ("select", "textarea", "option"):
            self.text = None
            if tag == "select":
                self.select = None


# --- The URL patterns ---------------------------------------------------------------------------------------


@dataclass
class Route:
    """One URL pattern: its route, a template to fill, and what kind each parameter is."""

    route: str
    callback: object
    template: str
    kinds: dict[str, str]
    real: list[str] = field(default_factory=list)  # paths of it seen on the pages
    keys: set[str] = field(default_factory=set)  # query and form keys its pages use

    @property
    def section(self) -> str:
        return "admin" if self.route.startswith("admin/") else "api" if self.route.startswith("api/") else "site"

    def matches(self, path: str) -> bool:
        try:
            return resolve(path).func is self.callback
        except Resolver404:
            return False

    def fill(self, values: dict[str, str]) -> str:
        return self.template % values


def routes() -> list[Route]:
    """Every URL pattern, found by walking the resolver (a new URL is covered without a change here)."""

    def walk(resolver, chain):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry, [*chain, entry])
            else:
                yield [*chain, entry]

    found = []
    for chain in walk(get_resolver(), []):
        template, kinds = "/", {}
        for entry in chain:
            (piece, params), *_ = normalize(entry.pattern.regex.pattern)
            template += piece
            converters = getattr(entry.pattern, "converters", {})
            for name in params:
                converter = type(converters[name]).__name__ if name in converters else "regex"
                choices = re.search(rf"\(\?P<{name}>([\w|]+)\)", entry.pattern.regex.pattern)
                kinds[name] = f"choice:{choices[1]}" if choices and converter == "regex" else converter
        found.append(Route("".join(str(e.pattern) for e in chain), chain[-1].callback, template, kinds))
    return found


def route_paths(route: Route, hostile_values: list[str]) -> list[str]:
    """The route's paths seen on pages, then each parameter replaced in turn by each of ``hostile_values``."""
    paths = list(route.real)
    if not route.kinds:
        return paths or [route.fill({})]
    if route.real:
        base = {name: str(value) for name, value in resolve(route.real[0]).kwargs.items()}
    else:
        base = {
            name: kind.removeprefix("choice:").split("|")[0] if "|" in kind else "1"
            for name, kind in route.kinds.items()
        }
    for name, kind in route.kinds.items():
        choices = kind.removeprefix("choice:").split("|") if kind.startswith("choice:") else []
        for value in [*choices, *hostile_values]:
            path = route.fill({**base, name: value})
            if path not in paths and route.matches(path):  # an int converter takes digits only
                paths.append(path)
    return paths


# --- Exploring: the pages each role sees ---------------------------------------------------------------------


class Site:
    """The routes, and what the pages showed: each route's paths and keys, and every distinct form."""

    def __init__(self, prober: Prober):
        self.prober = prober
        self.routes = routes()
        self.by_callback = {id(route.callback): route for route in self.routes}
        # (method, route, field names): the first role that saw the form, the form, and the route it goes to
        self.forms: dict[tuple, tuple[str, Form, Route]] = {}

    def route_of(self, path: str) -> Route | None:
        try:
            return self.by_callback.get(id(resolve(path).func))
        except Resolver404:
            return None

    def explore(self, role: str, start: list[str]):
        """GET the pages ``role`` reaches from ``start`` through links and form actions."""
        queue, seen = [*start, *(route.fill({}) for route in self.routes if not route.kinds)], set()
        while queue:
            path = queue.pop(0)
            route = self.route_of(path)
            if path in seen or route is None:
                continue
            seen.add(path)
            if route.kinds and path not in route.real:
                if len(route.real) >= (1 if route.section == "admin" else 2):  # a few real ids are enough
                    continue
                route.real.append(path)
            _, html = self.prober.send(role, "GET", path)
            queue += self.read(role, path, html)[0]

    def read(self, role: str, path: str, html: str) -> tuple[list[str], list[tuple[str, Form, Route]]]:
        """Note what the page at ``path`` shows ``role``: answer the paths it links to, and the forms new here."""
        page, linked, new = PageParser(path), [], []
        page.feed(html)
        for link in [*page.links, *(form.action for form in page.forms)]:
            parts = urlsplit(link)
            target = self.route_of(unquote(parts.path)) if parts.netloc in ("", "testserver") else None
            if target is not None:
                target.keys.update(name for name, _ in parse_qsl(parts.query, keep_blank_values=True))
                linked.append(unquote(parts.path))
        for form in page.forms:
            target = self.route_of(form.path)
            key = (form.method, target and target.route, tuple(sorted(form.fields)))
            if target is not None and key not in self.forms:
                target.keys.update(form.fields)
                self.forms[key] = (role, form, target)
                new.append(self.forms[key])
        return linked, new
