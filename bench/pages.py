"""The billing pages' server time against a minimal signed-in view, at 10K and at 1M ledger entries.

What is measured, in a database of its own (``sigora_pages_bench`` on the configured server,
dropped and recreated each run), for a workspace on the Max plan with its owner signed in:

* server time per request, median and p95, of Settings → Billing & Credits: the full page,
  the balance fragment htmx polls every few seconds (a full answer, and the 304 an unchanged
  wallet gets for its ETag), and the transactions fragment: the first page, a page from the
  middle of the ledger (``?before=``), and three filters: a common tool (``?action=gmail-send``),
  a kind with a single entry (``?kind=adjustment``, the funding) and the period's first day;
* the floor: a ``@login_required`` view answering "ok", mounted by this script alone in a
  URLconf of its own that includes the project's, so it goes through the same middleware
  (sessions, auth, CSRF, messages, htmx, the reader's time zone) and the same session and
  user queries. Every figure is printed as a ratio to it, measured in the same rounds, so a
  slow or busy machine moves both together;
* all of it for a workspace whose ledger holds 10,000 entries, then for one holding
  1,000,000 (a second workspace, beside the first in the same table), and the second against
  the first: each one's ratio to its own floor, so the comparison does not depend on the
  machine being as quiet a minute later;
* what the database does per request: queries, time in ``cursor.execute()``, and the rows each
  view reads from ``billing_ledgerentry`` and ``billing_dailyusage`` (``pg_stat_user_tables``
  and ``pg_stat_user_indexes`` before and after a few requests), at both sizes; and at 1M the
  EXPLAIN ANALYZE plan of every query a view runs on those tables. "No query scans a
  workspace's ledger per request": a sequential scan of the ledger, or any read of over 1,000
  rows of either table in one request or one plan node, fails the run.

Method: requests go through Django's test ``Client`` in-process (no socket, no WSGI server),
timed with ``perf_counter()`` around ``client.get()``: middleware, view, queries and template
rendering. The database connection stays open between requests, as with CONN_MAX_AGE > 0.
The views are timed in interleaved rounds, each view once a round and the floor included
(the two slow filters one round in ten), after warm-up rounds, so drift and noise spread over
all of them alike. Each round runs them in a new shuffled order (seeded, so runs repeat): a
request right after the full page is slower than the same request after a small one (its
code and data out of the CPU's caches; measured here: the floor 1.56 ms after the balance
fragment, 1.99 ms after the page), and in a fixed order one view would always pay that.
DEBUG is off whatever the settings module (default ``sigora.settings.test``).

The ledgers grow through the engine, never by raw INSERTs: ``usage_record()`` (the call behind
``charge_batch()``) with 1,000 events a call, a mix of tools, quantities and specialists, the
calls in time order over the 20 days since the workspace's period began. So entry ids follow
time as on a live server, and the usage chart and the by-tool and by-specialist tables have
the same three weeks of days at both sizes: only the ledger's size differs. Each growth ends
with VACUUM ANALYZE (what autovacuum does on a live server), and at the end ``verify_ledger``
must find the books balanced.

Targets (on the medians; p95 ratios are printed beside them): the full page ≤ 8× the floor,
the transactions' first page ≤ 3×, the balance fragment ≤ 1.5× (every open tab polls it every
4 s: it stays lean), and at 1M each of them within 1.2× of its 10K figure; every view at most
4 queries a request. A missed target is printed (MISS) but does not fail the run; a wrong
answer, a ledger scan or unbalanced books exit 1.

Env: BENCH_SAMPLES (timed rounds, default 200), BENCH_WARMUP (default 20), BENCH_SIZES
(default "10000,1000000"), BENCH_DB (default sigora_pages_bench), BENCH_KEEP=1 keeps the
database. It only connects to 127.0.0.1 or a unix socket.
"""

from __future__ import annotations

import gc
import io
import itertools
import math
import os
import random
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402  (needs ROOT on the path)
    bench_database,
    database_recreate,
    point_django_at,
    production_logging,
)

# DEBUG off (the test settings): with DEBUG on, every query is also logged in memory.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.test")
# whitenoise looks for collected static files, which the test settings serve from the finders instead.
warnings.filterwarnings("ignore", message="No directory at")

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "20"))
SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "10000,1000000").split(","))
BENCH_DB = os.environ.get("BENCH_DB", "sigora_pages_bench")
HOST = "localhost"  # the test client's Host header: one of the default ALLOWED_HOSTS
FLOOR_PATH = "/__bench_floor/"

PERIOD_DAYS = 20  # the workspace's period began this many days ago; usage is spread over them
BATCH = 1_000  # events per usage_record() call, the engine's largest batch
STATS_REQUESTS = 10  # requests per view whose table reads are counted
SCAN_LIMIT = 1_000  # more rows than this read from the ledger or the day counters in one scan: a failure
WATCHED = ("billing_ledgerentry", "billing_dailyusage")

# The usage mix: (action, weight, quantity range). AI calls name a specialist at random.
MIX: list[tuple[str, int, tuple[int, int]]] = [
    ("claude-haiku", 40, (50, 2_000)),
    ("claude-sonnet", 12, (50, 2_000)),
    ("gmail-send", 20, (1, 1)),
    ("linkedin-dm", 10, (1, 1)),
    ("crustdata-search", 8, (1, 3)),
    ("social-publish", 10, (1, 1)),
]
AI_ACTIONS = {"claude-haiku", "claude-sonnet"}
SPECIALISTS = ("sourcing", "outreach", "publishing", "other")
FILTER_ACTION = "gmail-send"


class Failed(Exception):
    """Something is wrong (not merely slow): the run exits 1."""


# --- Setup ------------------------------------------------------------------------------------


def django_setup() -> dict[str, Any]:
    """Point Django at the bench database before any connection exists; return the original settings."""
    from django.conf import settings

    original = point_django_at(BENCH_DB)
    settings.DEBUG = False  # whatever the settings module says: no query log, no debug pages
    if HOST not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    production_logging()
    import django

    django.setup()
    settings.ROOT_URLCONF = floor_urlconf()
    return original


def floor_urlconf() -> str:
    """A URLconf of this script's own: the floor view, then everything the project routes."""
    from django.contrib.auth.decorators import login_required
    from django.http import HttpRequest, HttpResponse
    from django.urls import include, path

    @login_required
    def floor(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    patterns = [path(FLOOR_PATH.lstrip("/"), floor), path("", include("sigora.urls"))]
    module = types.ModuleType("bench_pages_urls")
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module.__name__


@dataclass
class Bench:
    """One size's workspace: its owner, its period's start and how many ledger entries it holds."""

    size: int
    user: Any
    workspace_id: int
    period_start: datetime
    entries: int


def prepare_database(original: dict[str, Any]) -> None:
    """Recreate the bench database and migrate it."""
    database_recreate(original, BENCH_DB)


def open_workspace(size: int) -> Bench:
    """An owner and a Max workspace whose period began PERIOD_DAYS ago, its top-ups funded hugely."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from billing.services import entry_post, wallet_lock, workspace_create

    user = get_user_model().objects.create_user(username=f"bench-{size}", email=f"bench-{size}@sigora.test")
    started = timezone.now() - timedelta(days=PERIOD_DAYS)
    workspace = workspace_create(name=f"Bench {short(size)}", owner=user, plan_key="max", now=started)
    with transaction.atomic():
        wallet = wallet_lock(workspace_id=workspace.pk)
        entry_post(
            wallet,
            kind="adjustment",
            topup_delta=10**15,
            idempotency_key="bench-fund",
            reason="benchmark funding",
            now=started,
        )
    # The plan grant and the funding are its first two entries.
    return Bench(size=size, user=user, workspace_id=workspace.pk, period_start=started, entries=2)


def grow(bench: Bench) -> float:
    """Charge usage through the engine until the workspace's ledger holds ``bench.size`` entries; events/s.

    The calls run in time order, spread evenly from the period's start to now with at least one
    a day, so entry ids follow time as on a live server.
    """
    from django.db import connection
    from django.utils import timezone

    from billing.services import usage_event, usage_record

    count = bench.size - bench.entries
    rng = random.Random(bench.size)
    calls = max(PERIOD_DAYS + 1, math.ceil(count / BATCH))
    start, end = bench.period_start + timedelta(minutes=1), timezone.now() - timedelta(seconds=5)
    actions = [a for a, _, _ in MIX]
    weights = [w for _, w, _ in MIX]
    quantities = {a: q for a, _, q in MIX}
    began = time.perf_counter()
    for call in range(calls):
        size = count * (call + 1) // calls - count * call // calls
        if not size:
            continue
        events = [
            usage_event(
                action=action,
                quantity=rng.randint(*quantities[action]),
                specialist=rng.choice(SPECIALISTS) if action in AI_ACTIONS else None,
                idempotency_key=f"grow-{call}-{i}",
            )
            for i, action in enumerate(rng.choices(actions, weights, k=size))
        ]
        usage_record(workspace=bench.workspace_id, events=events, now=start + (end - start) * (call + 0.5) / calls)
    rate = count / max(time.perf_counter() - began, 1e-9)
    bench.entries = bench.size
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum does on a live server, before anything is timed
        cursor.execute("SELECT count(*) FROM billing_ledgerentry WHERE workspace_id = %s", [bench.workspace_id])
        (found,) = cursor.fetchone()
    if found != bench.size:
        raise Failed(f"the workspace's ledger holds {found:,} entries, expected {bench.size:,}")
    return rate


# --- The views --------------------------------------------------------------------------------


# The targets (see the docstring): × the floor's median, 1M against 10K, queries a request.
PAGE_TARGET = 8.0
TRANSACTIONS_TARGET = 3.0
BALANCE_TARGET = 1.5
SCALE_TARGET = 1.2
MAX_QUERIES = 4


@dataclass
class View:
    name: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    check: Callable[[bytes], str | None] = lambda body: None  # a problem with the body, or None
    floor_target: float | None = None  # at most this many times the floor's median
    scale_target: float | None = None  # the last size within this many times the first
    every: int = 1  # timed in one round out of this many (slow views, so the run stays short)
    max_queries: int | None = MAX_QUERIES  # at most this many queries a request


HTMX = {"HTTP_HX_REQUEST": "true"}


def rows_check(expected: int, *, fragment: bool, contains: str = "") -> Callable[[bytes], str | None]:
    def check(body: bytes) -> str | None:
        text = body.decode()
        rows = text.count("<tr data-entry=")
        if rows != expected:
            return f"{rows} transaction rows, expected {expected}"
        if fragment and "<html" in text:
            return "the whole page instead of the fragment"
        if contains and contains not in text:
            return f"no {contains!r} in the answer"
        return None

    return check


def views_for(etag: str, middle: int, first_day: date, first_day_rows: int) -> list[View]:
    from billing.models import Action

    label = Action.objects.get(key=FILTER_ACTION).label

    def floor_check(body: bytes) -> str | None:
        return None if body == b"ok" else f"answered {body[:40]!r}"

    def page_check(body: bytes) -> str | None:
        text = body.decode()
        missing = [part for part in ('id="balance"', 'id="usage"', "<rect ", 'id="caps"') if part not in text]
        return f"the page lacks {missing}" if missing else rows_check(25, fragment=False)(body)

    def balance_check(body: bytes) -> str | None:
        text = body.decode()
        return None if text.lstrip().startswith('<section id="balance"') else "not the balance fragment"

    def empty(body: bytes) -> str | None:
        return None if not body else f"a 304 with a {len(body)}-byte body"

    base = "/settings/billing/"
    return [
        View("floor (signed-in 'ok')", FLOOR_PATH, check=floor_check, max_queries=None),
        View("full billing page", base, check=page_check, floor_target=PAGE_TARGET, scale_target=SCALE_TARGET),
        View(
            "balance fragment",
            base + "balance/",
            HTMX,
            check=balance_check,
            floor_target=BALANCE_TARGET,
            scale_target=SCALE_TARGET,
        ),
        View("balance 304 (If-None-Match)", base + "balance/", {**HTMX, "HTTP_IF_NONE_MATCH": etag}, 304, empty),
        View(
            "transactions, first page",
            base + "transactions/",
            HTMX,
            check=rows_check(25, fragment=True, contains='id="transactions"'),
            floor_target=TRANSACTIONS_TARGET,
            scale_target=SCALE_TARGET,
        ),
        View(
            "transactions, middle page",
            f"{base}transactions/?before={middle}",
            HTMX,
            check=rows_check(25, fragment=True, contains="Load more"),
        ),
        View(
            f"transactions, ?action={FILTER_ACTION}",
            f"{base}transactions/?action={FILTER_ACTION}",
            HTMX,
            check=rows_check(25, fragment=True, contains=label),
        ),
        # Filters that match few entries, or old ones: what must the page read to find 25 of them?
        View(
            "transactions, ?kind=adjustment",
            f"{base}transactions/?kind=adjustment",
            HTMX,
            check=rows_check(1, fragment=True, contains="benchmark funding"),
            every=10,
        ),
        View(
            "transactions, ?date_from/to=day 1",
            f"{base}transactions/?date_from={first_day}&date_to={first_day}",
            HTMX,
            check=rows_check(min(25, first_day_rows), fragment=True),
            every=10,
        ),
    ]


def signed_in_client(bench: Bench) -> Any:
    from django.test import Client

    client = Client(HTTP_HOST=HOST)
    client.force_login(bench.user)
    return client


def current_views(bench: Bench, client: Any) -> list[View]:
    """The views for the ledger as it is now: the balance's ETag and a cursor in the middle of the ledger."""
    from django.db.models import Max, Min

    from billing.models import LedgerEntry

    response = client.get("/settings/billing/balance/", **HTMX)
    etag = response.get("ETag", "")
    if response.status_code != 200 or not etag:
        raise Failed(f"the balance fragment answered {response.status_code} with ETag {etag!r}")
    entries = LedgerEntry.objects.filter(workspace_id=bench.workspace_id)
    ids = entries.aggregate(low=Min("id"), high=Max("id"))
    first_day = bench.period_start.astimezone(UTC).date()  # the reader's zone: no tz cookie, UTC
    on_first_day = entries.filter(created_at__date=first_day).count()
    return views_for(etag, (ids["low"] + ids["high"]) // 2, first_day, on_first_day)


def request(client: Any, view: View) -> Any:
    response = client.get(view.path, **view.headers)
    if response.status_code != view.status:
        raise Failed(f"{view.name}: {view.path} answered {response.status_code}, expected {view.status}")
    return response


def timed(client: Any, views: list[View]) -> dict[str, list[float]]:
    """Server time in seconds per view: interleaved rounds, the first WARMUP of them not kept."""
    for view in views:  # right answers first
        problem = view.check(request(client, view).content)
        if problem:
            raise Failed(f"{view.name}: {problem}")
    samples: dict[str, list[float]] = {view.name: [] for view in views}
    order = list(views)
    shuffle = random.Random(len(views)).shuffle  # a new order each round, the same sequence each run
    gc.collect()
    for round_ in range(WARMUP + SAMPLES):
        shuffle(order)
        for view in order:
            # Counted from the first timed round, so even a short run samples every view.
            if (round_ - WARMUP) % view.every:
                continue
            began = time.perf_counter()
            request(client, view)
            spent = time.perf_counter() - began
            if round_ >= WARMUP:
                samples[view.name].append(spent)
    return samples


# --- What the database does ---------------------------------------------------------------------


def table_reads() -> dict[str, tuple[int, int]]:
    """Per watched table: (sequential scans, rows read by sequential and index scans), flushed first."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's counters, as it goes idle
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            """
            SELECT t.relname, t.seq_scan, t.seq_tup_read + coalesce(sum(i.idx_tup_read), 0)
            FROM pg_stat_user_tables t LEFT JOIN pg_stat_user_indexes i ON i.relid = t.relid
            WHERE t.relname = ANY(%s) GROUP BY t.relname, t.seq_scan, t.seq_tup_read
            """,
            [list(WATCHED)],
        )
        return {name: (int(scans), int(rows)) for name, scans, rows in cursor.fetchall()}


@dataclass
class DbWork:
    """What one request of a view asks of the database, over STATS_REQUESTS requests."""

    queries: float
    sql_ms: float  # median time per request spent in cursor.execute(): the round trips and the server's work
    reads: dict[str, tuple[float, float]]  # per watched table: (sequential scans, rows read)


class QueryTimer:
    """A Django execute wrapper counting the queries and the time spent running them."""

    def __init__(self) -> None:
        self.queries, self.seconds = 0, 0.0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - began
            self.queries += 1


def db_work(client: Any, views: list[View]) -> dict[str, DbWork]:
    """Per view: queries, SQL time and rows read from the watched tables, per request."""
    from django.db import connection

    found = {}
    for view in views:
        before, timers = table_reads(), [QueryTimer() for _ in range(STATS_REQUESTS)]
        for timer in timers:
            with connection.execute_wrapper(timer):
                request(client, view)
        after = table_reads()
        found[view.name] = DbWork(
            queries=statistics.mean(timer.queries for timer in timers),
            sql_ms=statistics.median(timer.seconds for timer in timers) * 1_000,
            reads={
                table: (
                    (after[table][0] - before[table][0]) / STATS_REQUESTS,
                    (after[table][1] - before[table][1]) / STATS_REQUESTS,
                )
                for table in WATCHED
            },
        )
    return found


@dataclass
class Scan:
    node: str
    relation: str
    index: str
    estimated: float
    read: float  # rows the node produced plus rows it threw away, over all its loops


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def explain(sql: str) -> tuple[list[Scan], list[str], float]:
    """EXPLAIN ANALYZE one captured SELECT: its scans of watched tables, its node types, its time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
        (document,) = cursor.fetchone()
    root = document[0]
    scans, nodes = [], []
    for node in plan_nodes(root["Plan"]):
        nodes.append(node["Node Type"])
        if node.get("Relation Name") in WATCHED:
            loops = node.get("Actual Loops", 1)
            thrown = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
            scans.append(
                Scan(
                    node=node["Node Type"] + (" Backward" if node.get("Scan Direction") == "Backward" else ""),
                    relation=node["Relation Name"],
                    index=node.get("Index Name", ""),
                    estimated=node.get("Plan Rows", 0),
                    read=(node.get("Actual Rows", 0) + thrown) * loops,
                )
            )
    return scans, nodes, root.get("Execution Time", 0.0)


def audit_queries(client: Any, views: list[View]) -> list[str]:
    """One request per view under capture: print its queries' plans on watched tables; return the scans found."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scans_found = []
    for view in views:
        with CaptureQueriesContext(connection) as captured:
            request(client, view)
        print(f"  {view.name}: {len(captured)} queries")
        for number, query in enumerate(captured.captured_queries, 1):
            sql = query["sql"]
            if not any(table in sql for table in WATCHED):
                continue
            if not sql.lstrip().upper().startswith("SELECT"):
                raise Failed(f"{view.name}: a GET writes to a watched table: {sql}")
            scans, nodes, ms = explain(sql)
            shown = "; ".join(
                f"{s.node}{f' using {s.index}' if s.index else ''} on {s.relation}"
                f" (est {s.estimated:,.0f}, read {s.read:,.0f})"
                for s in scans
            )
            print(f"    q{number}: {ms:.2f} ms  [{' > '.join(nodes)}]  {shown}")
            for scan in scans:
                seq = scan.node.startswith("Seq Scan") and scan.relation == "billing_ledgerentry"
                if seq or scan.read > SCAN_LIMIT:
                    what = "a sequential scan of the ledger" if seq else f"{scan.read:,.0f} rows read"
                    scans_found.append(f"{view.name}: {what} ({scan.node} on {scan.relation})\n      SQL: {sql}")
    return scans_found


# --- The run ------------------------------------------------------------------------------------


@dataclass
class Figures:
    size: int
    samples: dict[str, list[float]]
    work: dict[str, DbWork]

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name]) * 1_000

    def p95(self, name: str) -> float:
        ordered = sorted(self.samples[name])
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1_000


def short(size: int) -> str:
    for unit, scale in (("M", 1_000_000), ("K", 1_000)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size:,}"


def report(views: list[View], figures: list[Figures]) -> int:
    """Print the table; return how many timing targets were missed."""
    floor = views[0].name
    first, last = figures[0], figures[-1]
    print("\nserver time per request in ms (median / p95; × = ratio to the same size's floor, median / p95)")
    head = f"{'view':<34}"
    for f in figures:
        head += f" {short(f.size) + ' med':>9} {'p95':>6} {'×':>11}"
    if len(figures) > 1:
        head += f" {short(last.size) + '/' + short(first.size):>9}"
    print(head + "  targets")
    missed = 0
    for view in views:
        line = f"{view.name:<34}"
        ratios = []
        for f in figures:
            ratio, ratio95 = f.median(view.name) / f.median(floor), f.p95(view.name) / f.p95(floor)
            ratios.append(ratio)
            line += f" {f.median(view.name):>9.2f} {f.p95(view.name):>6.2f} {ratio:>5.2f}/{ratio95:<5.2f}"
        verdicts = []
        if view.floor_target is not None:
            worst = max(ratios)
            ok = worst <= view.floor_target
            missed += not ok
            verdicts.append(f"≤{view.floor_target:g}× floor {'PASS' if ok else 'MISS'}")
        if len(figures) > 1:
            scale = ratios[-1] / ratios[0]
            line += f" {scale:>8.2f}×"
            if view.scale_target is not None:
                ok = scale <= view.scale_target
                missed += not ok
                verdicts.append(
                    f"{short(last.size)} ≤{view.scale_target:g}× {short(first.size)} {'PASS' if ok else 'MISS'}"
                )
        print(line + "  " + ", ".join(verdicts))
    if len(figures) > 1:
        print(
            f"({short(last.size)}/{short(first.size)}: the ratio to the floor at {short(last.size)} over the one at"
            f" {short(first.size)}; the floor's own median moved {last.median(floor) / first.median(floor):.2f}×)"
        )

    print(
        f"\ndatabase work per request ({STATS_REQUESTS} requests each): queries, median ms in cursor.execute(),"
        " rows read (sequential scans) from the ledger and the day counters (pg_stat counters)"
    )
    head = f"{'view':<34}"
    for f in figures:
        head += f" {short(f.size) + ' q':>6} {'sql ms':>6} {'ledger rows':>16} {'daily rows':>12}"
    print(head + "  targets")
    for view in views:
        line = f"{view.name:<34}"
        for f in figures:
            work = f.work[view.name]
            (ledger_scans, ledger_rows), (daily_scans, daily_rows) = (work.reads[t] for t in WATCHED)
            line += f" {work.queries:>6g} {work.sql_ms:>6.2f} {f'{ledger_rows:,.0f} ({ledger_scans:g})':>16}"
            line += f" {f'{daily_rows:,.0f} ({daily_scans:g})':>12}"
        if view.max_queries is not None:
            ok = all(f.work[view.name].queries <= view.max_queries for f in figures)
            missed += not ok
            line += f"  ≤{view.max_queries} queries {'PASS' if ok else 'MISS'}"
        print(line)
    return missed


def run(original: dict[str, Any]) -> list[str]:
    from django.conf import settings
    from django.core.management import CommandError, call_command
    from django.db import connection

    prepare_database(original)
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (.pgdata, unix socket)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('shared_buffers')")
        version, shared_buffers = cursor.fetchone()
    print(f"PostgreSQL {version} (shared_buffers {shared_buffers}), {where}; database {BENCH_DB}")
    print(
        f"{os.cpu_count()} CPUs; settings {os.environ['DJANGO_SETTINGS_MODULE']} (DEBUG {settings.DEBUG});"
        f" {WARMUP} warm-up + {SAMPLES} timed rounds, each view once a round (slow filters one in 10)",
        flush=True,
    )

    figures: list[Figures] = []
    problems: list[str] = []
    views: list[View] = []
    for size in SIZES:
        began = time.monotonic()
        bench = open_workspace(size)
        rate = grow(bench)
        print(
            f"\nworkspace {bench.workspace_id} with {size:,} ledger entries (grown through usage_record at"
            f" {rate:,.0f} events/s, then VACUUM ANALYZE: {time.monotonic() - began:.0f} s)",
            flush=True,
        )
        client = signed_in_client(bench)
        views = current_views(bench, client)
        samples = timed(client, views)
        work = db_work(client, views)
        figures.append(Figures(size, samples, work))
        print("  " + ", ".join(f"{v.name} {figures[-1].median(v.name):.2f} ms" for v in views[:3]) + " …")
        for view in views:
            for table, (scans, rows) in work[view.name].reads.items():
                if (table == "billing_ledgerentry" and scans) or rows > SCAN_LIMIT:
                    problems.append(
                        f"at {size:,}: {view.name} reads {rows:,.0f} rows of {table} per request"
                        f" ({scans:g} sequential scans)"
                    )
        if size == SIZES[-1]:
            print(f"\nqueries per request at {size:,} entries, and the plans of those on {', '.join(WATCHED)}:")
            problems += [f"at {size:,}: {scan}" for scan in audit_queries(client, views)]

    missed = report(views, figures)
    print(f"\ntargets missed: {missed}" if missed else "\nevery target met")

    out = io.StringIO()
    try:
        call_command("verify_ledger", stdout=out, no_color=True)
    except CommandError as failed:
        problems.append(f"verify_ledger FAILED: {out.getvalue().strip()} {failed}")
    else:
        print(f"verify_ledger: {out.getvalue().strip()}")
    return problems


def main() -> None:
    if not SIZES or any(b <= a for a, b in itertools.pairwise(SIZES)) or SIZES[0] < 3:
        raise SystemExit("bench: BENCH_SIZES must be increasing sizes of at least 3 entries")
    original = django_setup()
    problems: list[str] = []
    with bench_database(original, BENCH_DB):
        try:
            problems = run(original)
        except Failed as failed:
            problems = [str(failed)]
    if problems:
        print("\nFAILED:", *problems, sep="\n  ")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
