"""``{% link 'billing:purchase' 'top-up' pack.key %}``: ``{% url %}`` for this project's pages, reversed once;
``{% asset 'css/app.css' %}``: ``{% static %}``, looked up once;
``{% settings_nav %}``: the settings pages' navigation, the current one marked.
"""

import functools

from django import template
from django.conf import settings
from django.core.files.storage import Storage, storages
from django.http import HttpRequest
from django.templatetags.static import StaticNode
from django.utils.safestring import SafeString

from billing.links import link as cached_link

register = template.Library()


@register.simple_tag(name="link")
def link(viewname: str, *args: object) -> str:
    return cached_link(viewname, *args)


@functools.lru_cache(maxsize=256)
def _asset_url(storage: Storage, debug: bool, path: str) -> str:
    return StaticNode.handle_simple(path)


@register.simple_tag
def asset(path: str) -> str:
    """``{% static path %}``, once per storage: every page names the same four files, each a manifest
    lookup and a URL join. A change of STATIC_URL or STORAGES makes a new storage, hence a new key;
    DEBUG is in it because the manifest storage names unhashed files under DEBUG."""
    return _asset_url(storages["staticfiles"], settings.DEBUG, path)


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
