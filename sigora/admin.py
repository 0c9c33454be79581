"""The staff admin's site: Django's, behind two factors, with every model's admin held to the project's input bounds.

Only a session verified by its second factor is let in (django-otp's ``is_verified``, as its
OTPAdminSite does), and the admin has no sign-in form of its own: its login page sends people to
the site's, which asks for the password and then the code (billing/second_factor.py).

Django's admin looks objects up by the id in the URL and runs actions on the ids a form
posts, and sends both to the database as they come: a NUL in a text key, or "abc" among the
selected rows of an integer key, is a database error (a 500) there. Every ModelAdmin
registered on this site, Django's own (users, groups) and django-celery-beat's included,
answers those as "not found" or "nothing selected" instead.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from billing.bounds import is_value_of
from billing.second_factor import is_verified


class BoundedInputAdmin:
    """A ModelAdmin mixin: an object id or a selected row that is no value of its key is refused before any query."""

    def get_object(self, request, object_id, from_field=None):
        field = self.model._meta.get_field(from_field) if from_field else self.model._meta.pk
        if not is_value_of(field, object_id):
            return None  # Django then says the object does not exist, as for any unknown id
        return super().get_object(request, object_id, from_field)

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(is_value_of(self.model._meta.pk, value) for value in selected):
            self.message_user(request, "Select rows of the list to act on them: no action was taken.", messages.WARNING)
            return None  # back to the list
        return super().response_action(request, queryset)


class SigoraAdminSite(admin.AdminSite):
    site_header = "Sigora Billing & Credits: staff"
    site_title = "Sigora staff"
    enable_nav_sidebar = False  # the ledger's and the workspaces' lists need the width more than a second menu

    def has_permission(self, request):
        """Active staff whose session passed its second factor."""
        return super().has_permission(request) and is_verified(request.user)

    def login(self, request, extra_context=None):
        """One way in: the site's sign-in, with its second step (the admin's own form would ask for no code)."""
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name)
        return redirect_to_login(next_url)

    def register(self, model_or_iterable, admin_class=None, **options):
        """Register as Django does, with ``BoundedInputAdmin`` mixed into the admin class."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, BoundedInputAdmin):
            admin_class = type(
                admin_class.__name__, (BoundedInputAdmin, admin_class), {"__module__": admin_class.__module__}
            )
        super().register(model_or_iterable, admin_class, **options)
