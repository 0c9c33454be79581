"""Every page at a phone's width, a small laptop's and a desktop's, with the demo's data and 120-character
names: no element is wider than its box, no table cell with something in it is hidden, the page never scrolls
sideways, and on a phone each stacked table cell names its column."""

from __future__ import annotations

from collections import Counter

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE
from tests.browser.demo_site import WIDE, demo_site_build

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LAPTOP = {"width": 1024, "height": 768}  # the sidebar beside pages whose tables have least room without stacking

# What does not fit, for every element of the page: content wider than the element's box (scrollWidth past
# clientWidth, whether it shows, is clipped or scrolls), a table cell not shown at all, or a page wider than the
# screen. Allowed: only what is clipped to a pixel on purpose for screen readers (.visually-hidden, a stacked
# table's header row). No box of the site scrolls sideways, the API reference's included; one that ever has to
# would be allowed here only with a visible cue that it scrolls.
OVERFLOWS_JS = """() => {
    const classes = (el) => typeof el.className === "string" ? el.className.trim().split(/\\s+/).filter(Boolean) : [];
    const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
        + classes(el).map((c) => "." + c).join("")
        + (el.dataset && el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : "");
    const where = (el) => {
        const parts = [];
        for (let e = el; e && e !== document.documentElement && parts.length < 3; e = e.parentElement) {
            parts.unshift(name(e));
        }
        return parts.join(" > ");
    };
    const text = (el) => (el.innerText || el.value || "").trim().replace(/\\s+/g, " ").slice(0, 40);
    const clipped = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const style = getComputedStyle(e);
            if (style.position === "absolute" && style.clip !== "auto") return true;
        }
        return false;
    };
    const found = [];
    for (const el of document.querySelectorAll("*")) {
        if (el.scrollWidth > el.clientWidth + 1 && !clipped(el)) {
            found.push(`${where(el)} "${text(el)}": content ${el.scrollWidth}px wide in ${el.clientWidth}px`);
        }
    }
    for (const table of document.querySelectorAll("table")) {
        const hidden = [...table.querySelectorAll("td, th")].filter((cell) => !clipped(cell)
            && (cell.textContent.trim() || cell.children.length)
            && (cell.getClientRects().length === 0 || getComputedStyle(cell).visibility !== "visible"));
        if (hidden.length) {
            const first = hidden[0].textContent.trim().slice(0, 40);
            found.push(`${where(table)}: ${hidden.length} cells not shown, the first "${first}"`);
        }
    }
    const page = document.documentElement;
    if (page.scrollWidth > window.innerWidth) {
        found.push(`the page is ${page.scrollWidth}px wide on a ${window.innerWidth}px screen`);
    }
    return found;
}"""

# On a phone each cell of a stacked table (its header row clipped for screen readers) names its column: its
# data-label is its column's header. Only an empty cell, a cell across the whole row (a note, "Load more") or
# one under a header with no visible text (a row's Remove or Receipt link) goes without.
LABELS_JS = """() => {
    const found = [];
    for (const table of document.querySelectorAll("table")) {
        const head = table.querySelector("thead");
        if (!head || getComputedStyle(head).position !== "absolute") continue;
        const headers = [...head.querySelectorAll("th")]
            .map((th) => th.querySelector(".visually-hidden") || !th.textContent.trim() ? null : th.textContent.trim());
        for (const row of table.querySelectorAll("tbody tr")) {
            for (const cell of row.cells) {
                const header = headers[cell.cellIndex];
                const empty = !cell.textContent.trim() && !cell.children.length;
                if (empty || cell.colSpan === headers.length || header === null) continue;
                if (cell.dataset.label !== header) {
                    const tableName = table.dataset.testid || table.caption?.textContent || "a table";
                    found.push(`${tableName}: "${cell.textContent.trim().slice(0, 30)}" is labelled`
                        + ` ${JSON.stringify(cell.dataset.label)}, its column is "${header}"`);
                }
            }
        }
    }
    return found;
}"""


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP, WIDE], ids=["phone", "small-laptop", "desktop"])
def test_every_page_fits_the_screen_with_the_longest_names(browsers, live_server, viewport):
    found = {}
    for visit in demo_site_build(live_server.url).visits:
        page = visit.open(browsers, viewport)
        content = page.content()
        missing = [name for name in visit.shows if name not in content]
        problems = page.evaluate(OVERFLOWS_JS) + [f"does not show {name}" for name in missing]
        if viewport is PHONE:
            problems += page.evaluate(LABELS_JS)
        if problems:
            found[visit.name] = problems
        page.context.close()
    report = "\n".join(f"{name}:\n    " + "\n    ".join(problems) for name, problems in found.items())
    assert not found, f"at {viewport['width']} px:\n{report}"


def accessible_roles(page, selector: str) -> Counter:
    """The roles Chromium's accessibility tree gives the element ``selector`` finds and everything inside it."""
    cdp = page.context.new_cdp_session(page)
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    backend = cdp.send("DOM.describeNode", {"nodeId": node})["node"]["backendNodeId"]
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    by_id = {n["nodeId"]: n for n in nodes}
    stack = [next(n for n in nodes if n.get("backendDOMNodeId") == backend)]
    roles = Counter()
    while stack:
        n = stack.pop()
        roles[n["role"]["value"]] += 1
        stack.extend(by_id[child] for child in n.get("childIds", []) if child in by_id)
    return roles


def test_a_stacked_table_is_still_a_table_to_assistive_technology(browsers, live_server):
    """On a phone the transactions are blocks of labelled lines; a screen reader still gets a table: its
    seven column headers, every row and cell, the rows "Load more" brought in included."""
    page = browsers.page(viewport=PHONE, user=demo_site_build(live_server.url).owner)
    page.goto("/settings/billing/")
    table = page.get_by_test_id("transactions")
    expect(table.locator("thead")).to_have_css("position", "absolute")  # stacked: the header row only for readers
    entries = table.locator("tbody tr[data-entry]")
    first_page = entries.count()
    page.get_by_role("link", name="Load more").click()
    expect(entries).to_have_count(2 * first_page)
    rows, cells = table.locator("tr").count(), table.locator("td").count()
    roles = accessible_roles(page, "[data-testid=transactions]")
    assert (roles["table"], roles["columnheader"], roles["row"], roles["cell"]) == (1, 7, rows, cells)
    # Browsers that drop a block-laid table's semantics get them back from app.js, for htmx's rows too.
    assert table.locator("tr:not([role=row]), td:not([role=cell])").count() == 0
