"""``{% link 'billing:purchase' 'top-up' pack.key %}``: ``{% url %}`` for this project's pages, reversed once."""

from django import template

from billing.links import link as cached_link

register = template.Library()


@register.simple_tag(name="link")
def link(viewname: str, *args: object) -> str:
    return cached_link(viewname, *args)
