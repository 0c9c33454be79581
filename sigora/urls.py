from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from billing.views.password_reset import ThrottledPasswordResetView
from billing.webhooks import stripe_webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
    path("api/v1/", include("api.urls")),
    path("settings/api-keys/", include("api.settings_urls")),
    # Before Django's own, whose other pages (sign-in, the reset link) it keeps.
    path("accounts/password_reset/", ThrottledPasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("settings/", RedirectView.as_view(pattern_name="billing:settings_billing", permanent=False)),
    path("", include("billing.urls")),
]

# A database that cannot answer: a 503 page with Retry-After; else Django's 500 (billing/views/unavailable.py).
handler500 = "billing.views.unavailable.server_error"
