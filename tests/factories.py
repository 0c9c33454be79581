"""Factories for tests. Workspaces open through the real service, so each has its wallet."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from billing.models import Workspace
from billing.services import workspace_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    username = factory.SelfAttribute("email")
    password = factory.django.Password("correct horse battery staple")


class WorkspaceFactory(factory.Factory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    owner = factory.SubFactory(UserFactory)
    plan_key = "free"
    seats = 1
    time_zone = "UTC"

    @classmethod
    def _create(cls, model_class, **kwargs):
        return workspace_create(**kwargs)

    @classmethod
    def _build(cls, model_class, **kwargs):
        raise NotImplementedError("workspaces are only ever created through workspace_create")
