"""Make the ledger append-only in the database itself.

Application code never updates or deletes an entry, and the admin is read-only, but
real money deserves a guard that a bug, a shell session or a careless migration cannot
get past: any UPDATE or DELETE of a ledger row raises an integrity error. (TRUNCATE, an
owner-only operation, stays possible so test databases can be flushed; the production
role should not hold it.)
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'billing_ledgerentry is append-only: % of entry % refused; write a correcting entry instead',
        TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER billing_ledger_append_only
    BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(CREATE, DROP),
    ]
