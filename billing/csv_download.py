"""CSV downloads streamed a row at a time: the customer's transactions and the staff ledger export.

Either may run to millions of rows, so nothing is built in memory: each row is written as it
is read, and the response streams the lines.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence

from django.http import StreamingHttpResponse


class _Echo:
    """A file whose write() hands the line back, so csv.writer formats without storing."""

    def write(self, value: str) -> str:
        return value


def csv_download(columns: Sequence[str], rows: Iterable[Sequence[str]], filename: str) -> StreamingHttpResponse:
    """``columns``, then ``rows`` as they come, as an attachment named ``filename``."""
    writer = csv.writer(_Echo())
    lines = itertools.chain([writer.writerow(columns)], (writer.writerow(row) for row in rows))
    response = StreamingHttpResponse(lines, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
