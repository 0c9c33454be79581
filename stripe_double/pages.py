"""The hosted pages: test checkout, authentication, billing portal, receipts and invoices.

Plain HTML with inline CSS and no script; every action is a form POST answered by a 303 redirect,
so a person, ``urllib`` and a browser test all drive them the same way. Buttons carry stable ids.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from .catalog import price_label
from .checkout import session_items
from .money import format_amount, format_date
from .portal import portal_flow_change, portal_flow_due_now, portal_subscriptions
from .store import Obj, Store

_STYLE = """
body{margin:0;background:#f4f5f7;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1a1f36}
main{max-width:560px;margin:40px auto;background:#fff;border-radius:10px;padding:28px 32px;
box-shadow:0 2px 12px rgba(0,0,0,.08)}
.badge{display:inline-block;background:#fff4d6;color:#7a5300;border:1px solid #f0d080;border-radius:4px;
padding:2px 8px;font-size:12px;font-weight:600;margin:0 0 12px}
h1{font-size:22px;margin:4px 0 16px}h2{font-size:17px;margin:20px 0 8px}
table{width:100%;border-collapse:collapse;margin:8px 0 16px}td,th{padding:6px 4px;border-bottom:1px solid #e6e8eb;
text-align:left}td.num,th.num{text-align:right}tr.total td{font-weight:700;border-bottom:0}
.error{background:#fdecea;color:#a01b1b;border:1px solid #f5c2c0;border-radius:6px;padding:10px 12px;margin:12px 0}
.note{background:#eaf5ea;color:#1e5c1e;border:1px solid #bfe0bf;border-radius:6px;padding:10px 12px;margin:12px 0}
.muted{color:#697386;font-size:13px}
form{margin:0}.choice{display:flex;align-items:center;justify-content:space-between;gap:12px;
border:1px solid #e6e8eb;border-radius:8px;padding:10px 12px;margin:8px 0}
button{font:inherit;border:0;border-radius:6px;padding:8px 16px;cursor:pointer;background:#e6e8eb;color:#1a1f36}
button.primary{background:#635bff;color:#fff;font-weight:600}button.danger{background:#fdecea;color:#a01b1b}
select,input{font:inherit;padding:6px;border:1px solid #c9ced6;border-radius:6px}input[type=number]{width:5em}
a{color:#635bff}
"""

_CARDS = (
    ("pay", "success", "primary", "Pay", "Card 4242 4242 4242 4242: succeeds"),
    ("decline", "decline", "", "Decline", "Card 4000 0000 0000 0002: declined"),
    ("authenticate", "authenticate", "", "Card needing authentication", "Card 4000 0027 6000 3184: 3-D Secure"),
    ("delayed", "delayed", "", "Delayed payment", "Bank debit: completes now, settles later"),
)
MESSAGES = {
    "declined": "Your card was declined.",
    "authentication_failed": "We are unable to authenticate your payment method. Please choose a different "
    "payment method and try again.",
}


Row = tuple[str, str] | tuple[str, str, str]  # label, value (both HTML), and maybe the value cell's id


def table(
    rows: list[Row], *, head: tuple[str, str] | None = None, total: Row | None = None, after: tuple[Row, ...] = ()
) -> str:
    """A two-column table with the figures on the right; cells arrive as HTML, already escaped."""

    def row(cells: Row, css: str = "") -> str:
        cell_id = f' id="{cells[2]}"' if len(cells) > 2 else ""
        return f'<tr{css}><td>{cells[0]}</td><td class="num"{cell_id}>{cells[1]}</td></tr>'

    html = f'<tr><th>{head[0]}</th><th class="num">{head[1]}</th></tr>' if head else ""
    html += "".join(row(cells) for cells in rows)
    if total:
        html += row(total, ' class="total"')
    html += "".join(row(cells) for cells in after)
    return f"<table>{html}</table>"


def page(title: str, badge: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><p class="badge">{escape(badge)}</p>{body}</main></body></html>\n'
    )


def message_page(title: str, text: str, link: tuple[str, str] | None = None) -> str:
    body = f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
    if link and link[0]:
        body += f'<p><a id="continue" href="{escape(link[0])}">{escape(link[1])}</a></p>'
    return page(title, "Offline Stripe double", body)


# --- checkout ---------------------------------------------------------------------------------------


def checkout_page(store: Store, session: Obj, error: str | None) -> str:
    badge = "Test checkout (offline Stripe double)"
    rows: list[Row] = [
        (f"{escape(item['description'])} × {item['quantity']}", _amount(item)) for item in session_items(store, session)
    ]
    total = ("Total due today", escape(format_amount(session["amount_total"], session["currency"])), "total")
    body = (
        f"<h1>{'Subscribe' if session['mode'] == 'subscription' else 'Pay'}</h1>"
        + table(rows, head=("Item", "Amount"), total=total)
        + f'<p class="muted">Paying as {escape(session["_email"] or "a guest")}</p>'
    )
    if error in MESSAGES:
        body += f'<p class="error" id="error">{escape(MESSAGES[error])}</p>'
    intent = store.find(session["_intent"])
    if intent is not None and intent["status"] == "requires_action":
        body += (
            '<p class="note">This payment is waiting for authentication. '
            f'<a id="resume" href="/checkout/{session["id"]}/authenticate">Authenticate</a></p>'
        )
    else:
        body += f'<form method="post" action="/checkout/{session["id"]}/pay">'
        for element_id, card, style, label, hint in _CARDS:
            body += (
                f'<div class="choice"><span class="muted">{escape(hint)}</span>'
                f'<button type="submit" id="{element_id}" name="card" value="{card}" class="{style}">'
                f"{escape(label)}</button></div>"
            )
        body += "</form>"
    if session["cancel_url"]:
        body += f'<p><a id="cancel" href="{escape(session["cancel_url"])}">Cancel and go back</a></p>'
    return page("Test checkout", badge, body)


def _amount(item: Obj) -> str:
    price = item["price"]
    text = format_amount(item["amount_total"], item["currency"])
    if price["recurring"]:
        text += f" / {price['recurring']['interval']}"
    return escape(text)


def authenticate_page(session: Obj, intent: Obj) -> str:
    amount = format_amount(intent["amount"], intent["currency"])
    body = (
        "<h1>Authenticate your payment</h1>"
        f"<p>Your bank asks you to confirm the payment of <strong>{escape(amount)}</strong> "
        "(test card 4000 0027 6000 3184).</p>"
        f'<form method="post" action="/checkout/{session["id"]}/authenticate">'
        '<div class="choice"><span class="muted">The bank accepts the payment</span>'
        '<button type="submit" id="complete" name="result" value="complete" class="primary">'
        "Complete authentication</button></div>"
        '<div class="choice"><span class="muted">The bank refuses the payment</span>'
        '<button type="submit" id="fail" name="result" value="fail" class="danger">Fail authentication</button></div>'
        "</form>"
    )
    return page("Authenticate payment", "Test 3-D Secure (offline Stripe double)", body)


def checkout_closed_page(session: Obj) -> str:
    if session["status"] == "complete":
        return message_page(
            "Checkout complete", "This checkout session has been paid.", (success_url(session), "Continue")
        )
    return message_page("Checkout expired", "This checkout session has expired.", (session["cancel_url"], "Go back"))


def success_url(session: Obj) -> str:
    url = session["success_url"] or f"/checkout/{session['id']}"
    return url.replace("{CHECKOUT_SESSION_ID}", quote(session["id"]))


# --- billing portal ---------------------------------------------------------------------------------


def portal_page(store: Store, portal: Obj, message: str | None) -> str:
    customer = store.get(portal["customer"], "customer")
    body = f'<h1>Manage your subscription</h1><p class="muted">{escape(customer["email"] or customer["id"])}</p>'
    if message:
        css = "error" if message.startswith("Error") else "note"
        body += f'<p class="{css}" id="message">{escape(message)}</p>'
    subscriptions = portal_subscriptions(store, portal)
    if not subscriptions:
        body += "<p>No active subscription.</p>"
    for index, subscription in enumerate(subscriptions):
        body += _portal_subscription(store, portal, subscription, "" if index == 0 else f"-{index}")
    invoices = [invoice for invoice in store.all("invoice") if invoice["customer"] == customer["id"]]
    if invoices:
        rows: list[Row] = [
            (
                f'<a href="/invoices/{invoice["id"]}">{format_date(invoice["created"])} · {invoice["status"]}</a>',
                escape(format_amount(invoice["total"], invoice["currency"])),
            )
            for invoice in sorted(invoices, key=lambda invoice: invoice["_seq"], reverse=True)
        ]
        body += "<h2>Invoices</h2>" + table(rows)
    if portal["return_url"]:
        body += f'<p><a id="return" href="{escape(portal["return_url"])}">Return</a></p>'
    return page("Billing portal", "Test billing portal (offline Stripe double)", body)


def portal_confirm_page(store: Store, portal: Obj) -> str:
    """The flow ``subscription_update_confirm`` opens here: the one change it names, and Confirm."""
    subscription, item, price_id, quantity = portal_flow_change(store, portal)
    old, new = store.get(item["price"], "price"), store.get(price_id, "price")
    interval = new["recurring"]["interval"]

    def plan(price: Obj, seats: int) -> str:
        each = format_amount(price["unit_amount"] * seats, price["currency"])
        return escape(
            f"{price_label(store, price)} · {seats} × {format_amount(price['unit_amount'], price['currency'])}"
            f" = {each} / {price['recurring']['interval']}"
        )

    due = portal_flow_due_now(store, subscription, item, price_id, quantity)
    end = format_date(item["current_period_end"])
    rows: list[Row] = [
        ("Current plan", plan(old, item["quantity"]), "current-plan"),
        ("New plan", plan(new, quantity), "new-plan"),
    ]
    total = ("Due today", escape(format_amount(due, new["currency"])), "due-today")
    note = (
        f"You are charged the prorated difference for the rest of the period today; from {end} the new plan "
        f"renews at {format_amount(new['unit_amount'] * quantity, new['currency'])} / {interval}."
        if due
        else f"Nothing is charged or refunded today; from {end} the plan renews at "
        f"{format_amount(new['unit_amount'] * quantity, new['currency'])} / {interval}."
    )
    body = (
        "<h1>Confirm your plan change</h1>"
        f'<p class="muted">{escape(store.get(portal["customer"], "customer")["email"] or portal["customer"])}</p>'
        + table(rows, total=total)
        + f'<p class="muted" id="terms">{escape(note)}</p>'
        + f'<form method="post" action="/portal/{portal["id"]}/confirm">'
        f'<input type="hidden" name="price" id="price" value="{escape(price_id)}">'
        f'<input type="hidden" name="quantity" id="quantity" value="{quantity}">'
        '<p><button type="submit" id="confirm" class="primary">Confirm</button></p></form>'
    )
    if portal["return_url"]:
        body += f'<p><a id="return" href="{escape(portal["return_url"])}">Go back</a></p>'
    return page("Confirm your plan change", "Test billing portal (offline Stripe double)", body)


def _portal_subscription(store: Store, portal: Obj, subscription: Obj, suffix: str) -> str:
    item = subscription["items"]["data"][0]
    price = store.get(item["price"], "price")
    each = format_amount(price["unit_amount"] * item["quantity"], price["currency"])
    end = format_date(item["current_period_end"])
    state = f"Cancels on {end}" if subscription["cancel_at_period_end"] else f"Renews on {end}"
    action = f"/portal/{portal['id']}"
    hidden = f'<input type="hidden" name="subscription" value="{subscription["id"]}">'
    options = ""
    for candidate in _plan_choices(store, price):
        selected = " selected" if candidate["id"] == price["id"] else ""
        text = f"{price_label(store, candidate)} — {format_amount(candidate['unit_amount'], candidate['currency'])}"
        options += f'<option value="{candidate["id"]}"{selected}>{escape(text)} / seat</option>'
    html = (
        f"<h2>{escape(price_label(store, price))}</h2>"
        f"<p>{item['quantity']} × {escape(format_amount(price['unit_amount'], price['currency']))} = "
        f"<strong>{escape(each)}</strong> / {price['recurring']['interval']} · {escape(state)} · "
        f"status {escape(subscription['status'])}</p>"
        f'<form method="post" action="{action}/update">{hidden}'
        f'<p><label for="price{suffix}">Plan</label> <select id="price{suffix}" name="price">{options}</select> '
        f'<label for="quantity{suffix}">Seats</label> '
        f'<input id="quantity{suffix}" name="quantity" type="number" min="1" value="{item["quantity"]}" size="4"></p>'
        f'<p><button type="submit" id="update{suffix}" class="primary">Update plan</button></p></form>'
    )
    if subscription["cancel_at_period_end"]:
        html += (
            f'<form method="post" action="{action}/reactivate">{hidden}'
            f'<button type="submit" id="reactivate{suffix}">Renew plan</button></form>'
        )
    else:
        html += (
            f'<form method="post" action="{action}/cancel">{hidden}'
            f'<button type="submit" id="cancel{suffix}" class="danger">Cancel plan</button></form>'
        )
    return html


def _plan_choices(store: Store, current: Obj) -> list[Obj]:
    """Active recurring prices in the same currency and interval, cheapest first (the current one included)."""
    interval = current["recurring"]["interval"]
    choices = [
        price
        for price in store.all("price")
        if price["recurring"]
        and price["recurring"]["interval"] == interval
        and price["currency"] == current["currency"]
        and (price["active"] or price["id"] == current["id"])
    ]
    return sorted(choices, key=lambda price: (price["unit_amount"], price["_seq"]))


# --- receipts and invoices --------------------------------------------------------------------------


def receipt_page(store: Store, charge: Obj) -> str:
    details = charge["payment_method_details"]
    method = details.get("card") or details.get("us_bank_account") or {}
    rows: list[Row] = [
        ("Amount paid", escape(format_amount(charge["amount"], charge["currency"])), "amount"),
        ("Date", format_date(charge["created"])),
        ("Payment method", escape(f"{details['type']} •••• {method.get('last4', '')}")),
        ("Status", escape(charge["status"])),
    ]
    if charge["amount_refunded"]:
        rows.append(("Refunded", escape(format_amount(charge["amount_refunded"], charge["currency"])), "refunded"))
    body = f"<h1>Receipt</h1><p class='muted'>{escape(charge['description'] or charge['id'])}</p>" + table(rows)
    return page("Receipt", "Test receipt (offline Stripe double)", body)


def invoice_page(invoice: Obj) -> str:
    rows: list[Row] = [
        (
            f"{escape(line['description'])}<br><span class='muted'>"
            f"{format_date(line['period']['start'])} – {format_date(line['period']['end'])}</span>",
            escape(format_amount(line["amount"], line["currency"])),
        )
        for line in invoice["lines"]["data"]
    ]
    total = ("Total", escape(format_amount(invoice["total"], invoice["currency"])), "total")
    paid = ("Amount paid", escape(format_amount(invoice["amount_paid"], invoice["currency"])), "paid")
    body = (
        f"<h1>Invoice {escape(invoice['number'] or invoice['id'])}</h1>"
        f"<p class='muted'>Status: <span id='status'>{escape(invoice['status'])}</span> · "
        f"{escape(invoice['billing_reason'] or '')}</p>" + table(rows, total=total, after=(paid,))
    )
    return page("Invoice", "Test invoice (offline Stripe double)", body)
