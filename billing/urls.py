from django.urls import path

from billing.views import accounts, activity, billing, byok, members, spending, two_factor

app_name = "billing"

urlpatterns = [
    path("", accounts.pricing, name="pricing"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/two-factor/", two_factor.two_factor_verify, name="two_factor_verify"),
    path("accounts/two-factor/enrol/", two_factor.two_factor_enrol, name="two_factor_enrol"),
    path("invitations/<str:token>/", accounts.invitation, name="invitation"),
    path("accounts/verify/<str:token>/", accounts.email_verify, name="email_verify"),
    path("settings/billing/verification/", accounts.verification_resend, name="verification_resend"),
    path("workspaces/switch/", accounts.workspace_switch, name="workspace_switch"),
    path("settings/billing/", billing.settings_billing, name="settings_billing"),
    path("settings/billing/balance/", billing.balance_fragment, name="balance"),
    path("settings/billing/transactions/", billing.transactions_fragment, name="transactions"),
    path("settings/billing/transactions.csv", billing.transactions_csv, name="transactions_csv"),
    path("settings/billing/usage/", billing.usage_fragment, name="usage"),
    path("settings/billing/caps/", billing.caps_fragment, name="caps"),
    path("settings/billing/history/", billing.history_fragment, name="history"),
    path("settings/billing/checkout/return/", billing.checkout_return, name="checkout_return"),
    path("settings/billing/portal/", billing.billing_portal, name="billing_portal"),
    path("settings/billing/<str:kind>/<slug:key>/", billing.purchase, name="purchase"),
    path("settings/byok/", byok.settings_byok, name="settings_byok"),
    path("settings/spending/", spending.settings_spending, name="settings_spending"),
    path("settings/members/", members.settings_members, name="settings_members"),
    path("settings/members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("settings/invitations/<int:invitation_id>/revoke/", members.invitation_revoke, name="invitation_revoke"),
    path("settings/invitations/<int:invitation_id>/resend/", members.invitation_resend, name="invitation_resend"),
    path("settings/two-factor/", two_factor.settings_two_factor, name="settings_two_factor"),
    path("settings/activity/", activity.settings_activity, name="settings_activity"),
]
