from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.pricing, name="pricing"),
    path("accounts/signup/", views.signup, name="signup"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("settings/billing/", views.settings_billing, name="settings_billing"),
    path("settings/billing/balance/", views.balance_fragment, name="balance"),
    path("settings/billing/transactions/", views.transactions_fragment, name="transactions"),
    path("settings/billing/transactions.csv", views.transactions_csv, name="transactions_csv"),
    path("settings/billing/usage/", views.usage_fragment, name="usage"),
    path("settings/billing/caps/", views.caps_fragment, name="caps"),
    path("settings/billing/history/", views.history_fragment, name="history"),
    path("settings/billing/checkout/return/", views.checkout_return, name="checkout_return"),
    path("settings/billing/portal/", views.billing_portal, name="billing_portal"),
    path("settings/billing/<str:kind>/<slug:key>/", views.purchase, name="purchase"),
    path("settings/byok/", views.settings_byok, name="settings_byok"),
    path("settings/spending/", views.settings_spending, name="settings_spending"),
    path("settings/members/", views.settings_members, name="settings_members"),
    path("settings/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("settings/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("settings/activity/", views.settings_activity, name="settings_activity"),
]
