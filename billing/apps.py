from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.db.backends.signals import connection_created


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing & Credits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import second_factor
        from billing.db import timeouts_set

        # Every connection, whichever process opens it, gets the database timeouts (settings.DATABASE_TIMEOUTS).
        connection_created.connect(timeouts_set, dispatch_uid="billing.db.timeouts_set")
        # Each sign-in notes in its session whether the account has a second factor to ask for.
        user_logged_in.connect(second_factor.remember_at_sign_in, dispatch_uid="billing.second_factor.sign_in")
