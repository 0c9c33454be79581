"""Split a staff adjustment's reason into a customer-facing description and a staff-only note.

``reason`` stays what the customer reads for every kind of entry; ``internal_note`` is new and
staff's alone. Existing adjustments were written when staff's reason went to the customer word
for word, so each one's reason moves to its internal note and the customer now reads
``DESCRIPTION`` instead.

The ledger is append-only (the trigger of 0002 refuses UPDATE), so this migration lifts the
trigger for its one UPDATE and puts it back, in the migration's own transaction: ALTER TABLE
holds the table's lock until commit, so no other session ever sees the ledger unguarded, and a
failure rolls the trigger back with everything else. Only adjustment rows change, and only
their text: no amount or balance moves, so ``verify_ledger`` reads the same books after.
"""

from django.conf import settings
from django.db import migrations, models

DESCRIPTION = "Credit adjustment by Sigora support"

FORWARD = f"""
-- The one sanctioned rewrite of ledger rows (see the module docstring): text only, adjustments only.
ALTER TABLE billing_ledgerentry DISABLE TRIGGER billing_ledger_append_only;
UPDATE billing_ledgerentry
   SET internal_note = reason, reason = '{DESCRIPTION}'
 WHERE kind = 'adjustment';
ALTER TABLE billing_ledgerentry ENABLE TRIGGER billing_ledger_append_only;
"""

# Back to one field that the customer reads. Rows this migration moved get their old reason
# back; an adjustment written since keeps its description (the note, staff's, must not reach
# the customer) and its note goes with the column.
BACKWARD = f"""
ALTER TABLE billing_ledgerentry DISABLE TRIGGER billing_ledger_append_only;
UPDATE billing_ledgerentry
   SET reason = internal_note
 WHERE kind = 'adjustment' AND reason = '{DESCRIPTION}' AND internal_note <> '';
ALTER TABLE billing_ledgerentry ENABLE TRIGGER billing_ledger_append_only;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0017_activity_api_key_verbs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="internal_note",
            field=models.TextField(
                blank=True,
                db_default="",
                default="",
                help_text="Staff only (admin and staff export), never shown to the customer: why a staff adjustment was made.",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="reason",
            field=models.TextField(
                blank=True,
                help_text="Shown to the customer with the entry (transactions, CSV, API). For a staff adjustment, the description staff wrote for the customer.",
            ),
        ),
        # Before the constraint below, which every moved row then meets (the old reason was required).
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.AddConstraint(
            model_name="ledgerentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "adjustment"), _negated=True),
                    ("actor__isnull", True),
                    models.Q(("internal_note", ""), _negated=True),
                    _connector="OR",
                ),
                name="ledger_staff_adjustment_has_internal_note",
            ),
        ),
    ]
