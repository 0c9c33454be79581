from django.apps import AppConfig
from django.db.backends.signals import connection_created


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing & Credits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.db import timeouts_set

        # Every connection, whichever process opens it, gets the database timeouts (settings.DATABASE_TIMEOUTS).
        connection_created.connect(timeouts_set, dispatch_uid="billing.db.timeouts_set")
