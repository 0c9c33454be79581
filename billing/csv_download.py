"""CSV downloads streamed a row at a time: the customer's transactions and the staff ledger export.

Either may run to millions of rows, so nothing is built in memory: each row is written as it
is read, and the response streams the lines. Both carry text customers wrote (reasons, leads,
idempotency keys, names), so every cell goes through ``csv_safe`` on the way out.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Sequence

from django.http import StreamingHttpResponse

# What a spreadsheet would run as a formula when a cell starts with it (OWASP's CSV injection list).
_FORMULA_STARTS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)  # a signed amount: read as a number, never run


def csv_safe(cell: str) -> str:
    """``cell`` as a spreadsheet will only ever show it: text starting like a formula gets a leading '.

    A plain signed number ("-1.5", "+700") is left as it is, so amounts stay numbers.
    """
    if cell[:1] in _FORMULA_STARTS and not _NUMBER.fullmatch(cell):
        return f"'{cell}"
    return cell


class _Echo:
    """A file whose write() hands the line back, so csv.writer formats without storing."""

    def write(self, value: str) -> str:
        return value


def csv_download(columns: Sequence[str], rows: Iterable[Sequence[str]], filename: str) -> StreamingHttpResponse:
    """``columns``, then ``rows`` as they come (each cell through ``csv_safe``), as an attachment named ``filename``."""
    writer = csv.writer(_Echo())
    safe_rows = ([csv_safe(cell) for cell in row] for row in rows)
    lines = itertools.chain([writer.writerow(columns)], (writer.writerow(row) for row in safe_rows))
    response = StreamingHttpResponse(lines, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
