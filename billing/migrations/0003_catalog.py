"""Load the help page's catalog: plans, top-up packs, specialists and priced actions.

Every figure is copied from the help page ("How credits work — cost per action").
Amounts are millicredits (1 credit = 1,000) and money is US cents. Tokens are priced
per token: "1 credit per 10 tokens" is 100 millicredits per token.
The data lives here, frozen with the migration, not imported from app code that may
change later; staff edit prices afterwards through the catalog services.
"""

from django.db import migrations

K = 1_000 * 1_000  # a thousand credits, in millicredits

PLANS = [
    # key, name, price in cents, monthly allowance, per seat
    ("free", "Free", 0, 10 * K, False),
    ("pro", "Pro", 29_00, 80 * K, True),
    ("max", "Max", 59_00, 300 * K, False),
    ("ultra", "Ultra", 119_00, 800 * K, False),
]

PACKS = [
    # key, credits, price in cents
    ("50k", 50 * K, 9_00),
    ("100k", 100 * K, 15_00),
    ("500k", 500 * K, 63_00),
    ("1m", 1_000 * K, 108_00),
]

SPECIALISTS = [
    ("sourcing", "Sales / Sourcing"),
    ("outreach", "Sales / Outreach"),
    ("publishing", "Marketing / Publishing"),
    ("other", "Other"),
]

# One Claude call may carry up to ten million tokens; one search up to 1,000 pages.
# Every other action is one external call per charge.
MAX_TOKENS, MAX_PAGES, ONE_CALL = 10_000_000, 1_000, 1

ACTIONS = [
    # key, label, description, category, specialist, unit, millicredits per unit, max quantity
    ("claude-haiku", "Claude Haiku", "1 credit per 10 tokens", "ai", None, "token", 100, MAX_TOKENS),
    ("claude-sonnet", "Claude Sonnet", "3 credits per 10 tokens (3× Haiku)", "ai", None, "token", 300, MAX_TOKENS),
    ("claude-opus", "Claude Opus", "15 credits per 10 tokens (15× Haiku)", "ai", None, "token", 1_500, MAX_TOKENS),
    (
        "crustdata-search",
        "Crustdata search",
        "1 page ≈ 25 leads",
        "infrastructure",
        "sourcing",
        "page",
        500_000,
        MAX_PAGES,
    ),
    (
        "crustdata-enrich",
        "Crustdata enrich",
        "1 profile, get email/phone",
        "infrastructure",
        "sourcing",
        "call",
        5_000_000,
        ONE_CALL,
    ),
    ("linkedin-dm", "LinkedIn DM via Unipile", "", "infrastructure", "outreach", "call", 1_500_000, ONE_CALL),
    ("linkedin-connect", "LinkedIn connection request", "", "infrastructure", "outreach", "call", 1_500_000, ONE_CALL),
    ("gmail-send", "Cold email send via Gmail (Composio)", "", "infrastructure", "outreach", "call", 200_000, ONE_CALL),
    (
        "social-publish",
        "Publish to LinkedIn / X / Reddit",
        "auto-post",
        "infrastructure",
        "publishing",
        "call",
        200_000,
        ONE_CALL,
    ),
    (
        "social-engage",
        "Reply / comment on a post",
        "auto-engage",
        "infrastructure",
        "publishing",
        "call",
        100_000,
        ONE_CALL,
    ),
    ("computer-use", "Computer Use browser action", "", "infrastructure", "other", "call", 500_000, ONE_CALL),
    (
        "transcript-summary",
        "Meeting transcript summary (AssemblyAI)",
        "",
        "infrastructure",
        "other",
        "call",
        500_000,
        ONE_CALL,
    ),
]


def load(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    TopUpPack = apps.get_model("billing", "TopUpPack")
    Specialist = apps.get_model("billing", "Specialist")
    Action = apps.get_model("billing", "Action")
    for order, (key, name, price, allowance, per_seat) in enumerate(PLANS):
        Plan.objects.update_or_create(
            key=key,
            defaults={
                "name": name,
                "price_cents": price,
                "allowance": allowance,
                "per_seat": per_seat,
                "sort_order": order,
            },
        )
    for order, (key, amount, price) in enumerate(PACKS):
        TopUpPack.objects.update_or_create(
            key=key, defaults={"amount": amount, "price_cents": price, "sort_order": order}
        )
    for order, (key, label) in enumerate(SPECIALISTS):
        Specialist.objects.update_or_create(key=key, defaults={"label": label, "sort_order": order})
    for order, (key, label, description, category, specialist, unit, price, max_quantity) in enumerate(ACTIONS):
        Action.objects.update_or_create(
            key=key,
            defaults={
                "label": label,
                "description": description,
                "category": category,
                "specialist_id": specialist,
                "unit": unit,
                "unit_price": price,
                "max_quantity": max_quantity,
                "sort_order": order,
            },
        )


def unload(apps, schema_editor):
    for model, keys in (
        ("Action", [row[0] for row in ACTIONS]),
        ("TopUpPack", [row[0] for row in PACKS]),
        ("Plan", [row[0] for row in PLANS]),
    ):
        apps.get_model("billing", model).objects.filter(key__in=keys).delete()
    apps.get_model("billing", "Specialist").objects.filter(key__in=[row[0] for row in SPECIALISTS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_ledger_append_only"),
    ]

    operations = [
        migrations.RunPython(load, unload),
    ]
