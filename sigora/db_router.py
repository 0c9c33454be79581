"""Writes and migrations on the primary, always; reads on the primary unless the code names the replica.

The replica (``DATABASE_REPLICA_URL``) takes only the reads that may lag a moment, and the code
that makes them asks for it by name (``billing.db.replica_or_primary()`` and ``.using()``): the
router guesses nothing. What it holds is what Django would get wrong on its own:
- a row read from the replica and then saved would be written back to the replica (Django
  writes an instance to the database it came from): writes go to the primary;
- ``migrate --database=replica`` would try to change a read-only standby: only the primary migrates;
- rows from the two aliases are the same data, so they may be related to each other.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

PRIMARY, REPLICA = DEFAULT_DB_ALIAS, "replica"


class PrimaryReplicaRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        # The rows related to a row read from the replica (a lazy ``entry.workspace``) come from
        # there too, as Django does without a router; every other read from the primary.
        instance = hints.get("instance")
        if instance is not None and instance._state.db == REPLICA:
            return REPLICA
        return PRIMARY

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        if {obj1._state.db, obj2._state.db} <= {PRIMARY, REPLICA}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == PRIMARY
