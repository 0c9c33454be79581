"""``{% settings_pages as pages %}``: the settings pages' navigation as data (URL, label, whether it is this page)."""

from django import template
from django.urls import reverse

register = template.Library()

# (URL name, label). The first is where every settings page that is not listed belongs (the
# billing page and its regions and forms).
SETTINGS_PAGES = (
    ("billing:settings_billing", "Billing & Credits"),
    ("billing:settings_spending", "Auto top-up & budget"),
    ("billing:settings_byok", "BYOK Anthropic Key"),
    ("billing:settings_members", "Members"),
    ("api_keys:settings_api_keys", "API keys"),
    ("billing:settings_activity", "Activity"),
    ("billing:settings_two_factor", "Two-factor sign-in"),
)


@register.simple_tag(takes_context=True)
def settings_pages(context: template.Context) -> list[dict]:
    match = context["request"].resolver_match
    here = match.view_name if match is not None else ""
    current = here if here in {name for name, _ in SETTINGS_PAGES[1:]} else SETTINGS_PAGES[0][0]
    return [{"url": reverse(name), "label": label, "current": name == current} for name, label in SETTINGS_PAGES]
