"""billing/db.py: the engine's raw SQL names tables and columns only as the models have them."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldDoesNotExist

from billing.db import Read, columns, insert, reads_run, table
from billing.models import BalanceAlert, LedgerEntry, Wallet


def test_tables_and_columns_are_the_models():
    assert table(Wallet) == Wallet._meta.db_table
    assert columns(LedgerEntry)[0] == "id" and "idempotency_key" in columns(LedgerEntry)
    assert "workspace_id" in columns(LedgerEntry) and "workspace" not in columns(LedgerEntry)


def test_an_insert_names_its_columns_in_the_tables_order_with_their_expressions():
    sql = insert(
        BalanceAlert,
        {"sent_at": "%(now)s", "kind": "'low'", "workspace_id": "1", "period_start": "now()", "recipients": "0"},
        alias="a",
    )
    assert sql == (
        f"INSERT INTO {BalanceAlert._meta.db_table} AS a (workspace_id, period_start, kind, recipients, sent_at) "
        "SELECT 1, now(), 'low', 0, %(now)s"
    )


def test_an_insert_refuses_a_column_the_table_does_not_have():
    with pytest.raises(ValueError, match=r"no column workspace$"):
        insert(BalanceAlert, {"workspace": "1", "period_start": "now()", "kind": "'low'", "recipients": "0"})


def test_an_insert_refuses_to_leave_out_a_column_the_database_cannot_fill():
    # sent_at has a default in Python only; internal_note and actor_id the database can fill (db_default, null).
    with pytest.raises(ValueError, match="must fill sent_at"):
        insert(BalanceAlert, {"workspace_id": "1", "period_start": "now()", "kind": "'low'", "recipients": "0"})
    entry = {column: "NULL" for column in columns(LedgerEntry) if column not in ("id", "internal_note", "actor_id")}
    assert insert(LedgerEntry, entry).startswith(f"INSERT INTO {LedgerEntry._meta.db_table} (workspace_id, kind,")


def test_named_fields_give_their_columns_in_the_order_asked():
    assert columns(LedgerEntry, "kind", "workspace", "id") == ["kind", "workspace_id", "id"]
    with pytest.raises(FieldDoesNotExist):
        columns(LedgerEntry, "workspace_idd")


def test_reads_sent_together_come_back_in_order_each_parsed_by_its_own_read(db, django_assert_num_queries):
    def read(value):
        return Read("SELECT %s::int UNION ALL SELECT %s::int + 1", [value, value], lambda rows: [r[0] for r in rows])

    with django_assert_num_queries(1):
        assert reads_run(read(1), read(10), read(100)) == [[1, 2], [10, 11], [100, 101]]
    alone = read(5).run()
    with django_assert_num_queries(1):
        assert reads_run(read(5)) == [alone] == [[5, 6]]


# --- execute_prepared_after_lock: the lock and the statement after it, one transaction ---------------

_LOCK = f"SELECT 1 FROM {table(Wallet)} WHERE workspace_id = %(ws)s FOR UPDATE"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the catalog the migrations loaded stays
def test_the_statement_after_the_lock_runs_in_the_locks_transaction():
    from billing.db import execute_prepared_after_lock
    from tests.factories import WorkspaceFactory

    workspace = WorkspaceFactory()
    # A row lock gives the transaction an id; a statement in a transaction of its own would have none.
    rows = execute_prepared_after_lock(
        _LOCK, {"ws": workspace.pk}, "SELECT txid_current_if_assigned() IS NOT NULL AS locked, %(n)s::int", {"n": 7}
    )
    assert rows == [(True, 7)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the catalog the migrations loaded stays
def test_a_failing_statement_after_the_lock_rolls_both_back_and_frees_the_row():
    import psycopg
    from django.db import connection

    from billing.db import execute_prepared_after_lock
    from tests.factories import WorkspaceFactory

    workspace = WorkspaceFactory()
    with pytest.raises(psycopg.errors.DivisionByZero):
        execute_prepared_after_lock(_LOCK, {"ws": workspace.pk}, "SELECT 1 / %(zero)s::int", {"zero": 0})
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # Another connection takes the row at once: nothing holds it any more.
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        assert other.execute(_LOCK + " NOWAIT", {"ws": workspace.pk}).fetchall() == [(1,)]
    # …and this connection still works, on the cursors it keeps.
    assert execute_prepared_after_lock(_LOCK, {"ws": workspace.pk}, "SELECT %(n)s::int", {"n": 1}) == [(1,)]


def test_the_lock_first_is_refused_inside_a_transaction(db):
    from billing.db import execute_prepared_after_lock

    # Inside atomic() the Sync would not commit, and a failure would need a savepoint: callers there
    # run the statement alone (billing.services.charging._run).
    with pytest.raises(RuntimeError, match="not inside atomic"):
        execute_prepared_after_lock(_LOCK, {"ws": 1}, "SELECT 1", {})
