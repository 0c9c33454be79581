"""Refunds and disputes of charges: what staff do in the dashboard and what cardholders do at their bank."""

from __future__ import annotations

from .encoding import Params, as_int, as_str, merge_metadata
from .errors import invalid, refused
from .routing import retrieve_and_list, route
from .store import Obj, Store

# --- refunds ----------------------------------------------------------------------------------------


@route("POST", "/v1/refunds")
def refund_create(store: Store, params: Params) -> Obj:
    charge_id, intent_id = as_str(params, "charge"), as_str(params, "payment_intent")
    if not charge_id and not intent_id:
        raise invalid("One of the following params should be provided for this request: payment_intent or charge.")
    if intent_id:
        intent = store.get(intent_id, "payment_intent", label="payment_intent", param="payment_intent")
        charge_id = intent["latest_charge"]
        if intent["status"] != "succeeded" or not charge_id:
            raise refused(f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.")
    charge = store.get(charge_id, "charge", param="charge")
    if charge["status"] != "succeeded":
        raise refused(f"Charge {charge['id']} has not succeeded, so it cannot be refunded.", param="charge")
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining == 0:
        raise refused(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = as_int(params, "amount", minimum=1)
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise refused(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
            code="amount_too_large",
        )
    refund = store.add(
        {
            "id": store.new_id("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": store.new_id("txn_"),
            "charge": charge["id"],
            "created": store.now(),
            "currency": charge["currency"],
            "description": None,
            "destination_details": {"type": "card", "card": {"reference_status": "pending", "type": "refund"}},
            "metadata": merge_metadata({}, params.get("metadata", {})),
            "payment_intent": charge["payment_intent"],
            "reason": as_str(params, "reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
    )
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    store.emit("charge.refunded", charge, {key: value for key, value in previous.items() if charge[key] != value})
    store.emit("refund.created", refund)
    return refund


# --- disputes ---------------------------------------------------------------------------------------

# What a dispute's evidence holds before any is given (files and texts, all null).
_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
_OPEN_STATUSES = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")


def dispute_open(store: Store, charge_id: str, *, reason: str = "fraudulent") -> Obj:
    """The cardholder disputes a charge with their bank."""
    charge = store.get(charge_id, "charge")
    if charge["status"] != "succeeded" or charge["disputed"]:
        raise refused(
            f"Charge {charge_id} cannot be disputed (status {charge['status']}, disputed {charge['disputed']})."
        )
    now = store.now()
    dispute = store.add(
        {
            "id": store.new_id("dp_"),
            "object": "dispute",
            "amount": charge["amount"] - charge["amount_refunded"],
            "balance_transactions": [],
            "charge": charge_id,
            "created": now,
            "currency": charge["currency"],
            "enhanced_eligibility_types": [],
            "evidence": dict.fromkeys(_EVIDENCE_FIELDS) | {"enhanced_evidence": {}},
            "evidence_details": {
                "due_by": now + 7 * 86400,
                "enhanced_eligibility": {},
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
                "submission_method": "not_submitted",
            },
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "needs_response",
        }
    )
    charge["disputed"] = True
    store.emit("charge.dispute.created", dispute)
    return dispute


def dispute_close(store: Store, dispute_id: str, *, won: bool) -> Obj:
    """The bank rules: won (the evidence given held, the money stays) or lost (the cardholder keeps the money)."""
    dispute = store.get(dispute_id, "dispute")
    if dispute["status"] not in _OPEN_STATUSES:
        raise refused(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
    if won:
        with store.updating(dispute, "charge.dispute.updated"):
            dispute["status"] = "under_review"
            dispute["evidence"]["uncategorized_text"] = "The customer received the credits they bought."
            dispute["evidence_details"].update(has_evidence=True, submission_count=1, submission_method="manual")
    dispute["status"] = "won" if won else "lost"
    store.emit("charge.dispute.closed", dispute)
    return dispute


def _charge_refunds(store: Store, charge: Obj) -> Obj:
    refunds = [refund for refund in store.all("refund") if refund["charge"] == charge["id"]]
    return store.present(store.page(refunds, {"limit": 100}, f"/v1/charges/{charge['id']}/refunds"))


def register(store: Store) -> None:
    store.includables[("charge", "refunds")] = _charge_refunds


retrieve_and_list("/v1/refunds", "refund", "charge", "payment_intent")
retrieve_and_list("/v1/disputes", "dispute", "charge", "payment_intent")
