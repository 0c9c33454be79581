"""The layout DESIGN.md §6 describes, held by tests: what imports what, and where names and markup live."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"billing", "api", "sigora", "stripe_double", "bench", "stack", "tests"}
# Where no module may take another's private names.
CHECKED_FOR_PRIVATE_IMPORTS = ("api", "billing", "sigora", "stripe_double", "bench", "stack", "tests")


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Each import in the module: the module named (relative ones with their leading dots) and the names taken."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or ""), [alias.name for alias in node.names]


def test_settings_import_no_app():
    """Settings load before the app registry: they import configuration, never the apps (nor the double)."""
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in (ROOT / "sigora" / "settings").glob("*.py")
        for module, _ in imports(path)
        if module.split(".")[0] in {"billing", "api", "stripe_double"}
    ]
    assert found == []


def test_the_stripe_double_imports_nothing_of_the_project_and_no_django():
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files("stripe_double")
        for module, _ in imports(path)
        if module.split(".")[0] in (OURS | {"django"}) - {"stripe_double"}
    ]
    assert found == []


def test_no_module_imports_another_modules_private_names():
    found = [
        f"{path.relative_to(ROOT).as_posix()}: from {module} import {name}"
        for path in python_files(*CHECKED_FOR_PRIVATE_IMPORTS)
        for module, names in imports(path)
        if module.startswith(".") or module.split(".")[0] in OURS
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert found == []


def test_no_top_level_module_of_an_app_shares_its_name_with_a_deeper_one():
    """``billing/periods.py`` beside ``billing/services/periods.py`` makes readers guess; ``admin/holds.py``
    beside ``services/holds.py`` (one package per layer, naming its subjects) does not."""
    clashes = {}
    for app in ("billing", "api"):
        top = {path.stem for path in (ROOT / app).glob("*.py")} - {"__init__"}
        deeper = {
            path.stem
            for path in (ROOT / app).rglob("*.py")
            if path.parent != ROOT / app and "migrations" not in path.parts
        }
        if found := top & deeper:
            clashes[app] = sorted(found)
    assert clashes == {}


LEDGER_KEY_PREFIXES = (
    "plan-grant:",
    "plan-expiry:",
    "plan-fallback:",
    "plan-restore:",
    "plan-join:",
    "plan-upgrade:",
    "top-up:",
    "reversal:",
    "hold:",
    "adjustment:",
)


def test_each_ledger_key_prefix_is_written_in_one_module():
    """Every key billing makes for its own entries starts in billing/services/ledger_keys.py, and only there."""
    keys = ROOT / "billing" / "services" / "ledger_keys.py"
    written = {}
    for path in python_files("billing"):
        for node in ast.walk(ast.parse(path.read_text())):
            start = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
            if isinstance(start, ast.Constant) and isinstance(start.value, str):
                for prefix in LEDGER_KEY_PREFIXES:
                    if start.value.startswith(prefix):
                        written.setdefault(prefix, set()).add(path.relative_to(ROOT).as_posix())
    assert written == {prefix: {keys.relative_to(ROOT).as_posix()} for prefix in LEDGER_KEY_PREFIXES}


def test_the_admin_builds_no_html():
    """Its markup is in templates/admin/; its display functions hand over plain values."""
    found = [
        path.relative_to(ROOT).as_posix()
        for path in python_files("billing/admin")
        if re.search(r"format_html|mark_safe|SafeString\(|<(a|br|div|p|pre|span|table|td|th|tr)\b", path.read_text())
    ]
    assert found == []


def test_the_selectors_name_no_table_by_hand():
    """Their SQL takes table names from the models (``billing.db.table``), so a renamed table cannot be missed."""
    import django.apps

    tables = {model._meta.db_table for model in django.apps.apps.get_models()}
    found = [
        f"{path.relative_to(ROOT).as_posix()}: {table}"
        for path in python_files("billing/selectors")
        for table in tables
        if re.search(rf"\b{re.escape(table)}\b", path.read_text())
    ]
    assert found == []


# Where Python may not write markup: the app, the API and the project. stripe_double/ is left out: a
# standalone development tool outside the app (its own small server and test-payment page), not
# part of the pages.
CHECKED_FOR_MARKUP = ("billing", "api", "sigora")
SAFE_MARKUP = re.compile(r"\b(format_html|mark_safe|SafeString\()")
HTML_TAG = re.compile(
    r"</?(a|abbr|b|br|button|code|dd|div|dl|dt|em|figure|form|h[1-6]|i|img|input|label|li|option|p|path|pre|rect"
    r"|section|select|small|span|strong|svg|table|tbody|td|th|thead|time|tr|ul)(?=[\s/>])"
)


def markup_written(path: Path) -> list[str]:
    """What in ``path`` makes HTML: the safe-string helpers, or a tag in a string (docstrings aside)."""
    source = path.read_text()
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = [match.group(0) for match in SAFE_MARKUP.finditer(source)]
    found += [
        tag.group(0)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        for tag in HTML_TAG.finditer(node.value)
    ]
    return found


def test_no_python_module_writes_markup():
    """Markup lives in templates: views, forms, template tags and charts hand them plain values (CONVENTIONS.md)."""
    found = {
        path.relative_to(ROOT).as_posix(): written
        for path in python_files(*CHECKED_FOR_MARKUP)
        if (written := markup_written(path))
    }
    assert found == {}


def module_imports(app: str) -> dict[str, set[str]]:
    """Each module of ``app`` and the modules of the app it imports, anywhere in it (an import inside a
    function closes a cycle as surely, only later), ``from package import module`` included."""
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in python_files(app)
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for module, taken in imports(path):
            if not module.startswith("."):  # the project imports absolutely; relative ones name no app module here
                found |= {module} | {f"{module}.{each}" for each in taken}
        graph[name] = {target for target in found if target in modules and target != name}
    return graph


def test_the_api_has_no_import_cycle():
    """api/'s modules import each other one way: urls → schema → the endpoints → http → credentials → models."""
    graph = module_imports("api")
    state: dict[str, int] = {}  # 1 on the path being walked, 2 done

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path, module, target]
            if target not in state and (found := cycle_from(target, [*path, module])):
                return found
        state[module] = 2
        return None

    cycles = [found for module in sorted(graph) if module not in state and (found := cycle_from(module, []))]
    assert cycles == []
