"""/api/v1/: one route per operation (the holds endpoints join here, from their own module)."""

from django.urls import path

from api import docs, holds, views

app_name = "api"

urlpatterns = [
    path("openapi.json", docs.openapi_json, name="openapi"),
    path("docs", docs.docs, name="docs"),
    path("charges", views.charges, name="charges"),
    path("charges/batch", views.charges_batch, name="charges_batch"),
    path("balance", views.balance, name="balance"),
    path("transactions", views.transactions, name="transactions"),
    path("catalog", views.catalog, name="catalog"),
    path("replies", views.replies, name="replies"),
    path("replies/resume", views.replies_resume, name="replies_resume"),
    path("byok-key", views.byok_key, name="byok_key"),
    path("holds", holds.holds, name="holds"),
    path("holds/<str:hold_id>/settle", holds.hold_settle, name="hold_settle"),
    path("holds/<str:hold_id>/release", holds.hold_release, name="hold_release"),
]
