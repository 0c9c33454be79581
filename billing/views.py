from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    """The help page's price list, rendered from the catalog the engine charges by."""
    return render(request, "billing/pricing.html", {"catalog": selectors.catalog_overview()})
