"""Remove a person's two-factor devices (a lost phone and lost backup codes): their next sign-in enrols again."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from billing.services import two_factor_reset


class Command(BaseCommand):
    help = "Remove every two-factor device (authenticator app, backup codes) of the account with this email."

    def add_arguments(self, parser):
        parser.add_argument("email", help="The account's email address (its sign-in name).")

    def handle(self, *args, email: str, **options):
        user = get_user_model().objects.filter(username=email.strip().lower()).first()
        if user is None:
            raise CommandError(f"No account signs in as {email!r}.")
        removed = two_factor_reset(user=user)
        then = "enrols a new app at their next sign-in" if user.is_staff else "signs in with the password alone"
        self.stdout.write(f"Removed {removed} device(s) of {user.username}: they {then}.")
