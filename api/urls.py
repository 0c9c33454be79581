"""/api/v1/: the django-ninja application's routes (its operations, the document and the docs page)."""

from api.schema import api

app_name = "api"

urlpatterns, _, _ = api.urls
