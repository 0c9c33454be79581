"""``{% link 'billing:purchase' 'top-up' pack.key %}``: ``{% url %}`` for this project's pages, reversed once;
``{% settings_nav %}``: the settings pages' navigation, the current one marked.
"""

from django import template
from django.http import HttpRequest
from django.utils.safestring import SafeString

from billing.links import link as cached_link

register = template.Library()


@register.simple_tag(name="link")
def link(viewname: str, *args: object) -> str:
    return cached_link(viewname, *args)


# (URL name, label as HTML). The first is where every settings page that is not listed belongs
# (the billing page and its regions and forms).
SETTINGS_PAGES = (
    ("billing:settings_billing", "Billing &amp; Credits"),
    ("billing:settings_spending", "Auto top-up &amp; budget"),
    ("billing:settings_byok", "BYOK Anthropic Key"),
    ("billing:settings_members", "Members"),
    ("api_keys:settings_api_keys", "API keys"),
    ("billing:settings_activity", "Activity"),
)


_CURRENT = ' aria-current="page"'
_OTHER_PAGES = frozenset(name for name, _ in SETTINGS_PAGES[1:])


@register.simple_tag(takes_context=True)
def settings_nav(context: template.Context) -> SafeString:
    """The six links, written here: on every settings page, a dozen template lookups and tests less."""
    request: HttpRequest = context["request"]
    match = request.resolver_match
    here = f"{match.namespace}:{match.url_name}" if match is not None else ""
    current = here if here in _OTHER_PAGES else SETTINGS_PAGES[0][0]
    return SafeString(
        "\n".join(
            f'<a href="{cached_link(name)}"{_CURRENT if name == current else ""}>{label}</a>'
            for name, label in SETTINGS_PAGES
        )
    )
