"""The one CSV writer of every export a customer opens in a spreadsheet (the
audit log, the CFDI index): never a formula.

A cell that Excel, LibreOffice or Google Sheets would read as a formula — one
starting with ``=``, ``+``, ``-`` or ``@``, or with a tab, carriage return or
line feed before one, and the full-width and small forms of those signs that
East Asian input methods type (``＝``, ``＋``, ``－``, ``＠``, ``﹦``, ``﹢``,
``﹣``, ``﹫``) and the minus sign ``−`` — is written with a leading apostrophe,
so ``=HYPERLINK("http://evil","Factura")`` in a CFDI's ``Emisor Nombre`` reaches
the accountant as text. Plain numbers (``-12.50``) are left as they are: they
are what the column holds and they run nothing. Every export goes through
:class:`CsvWriter`; nothing else writes CSV (a test holds the modules to it).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_STARTS = frozenset(
    "=+-@\t\r\n"
    "\uff1d\uff0b\uff0d\uff20"  # full-width = + - @
    "\ufe66\ufe62\ufe63\ufe6b"  # small = + - @
    "\u2212"  # minus sign
)
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")

#: Opens a CSV so that Excel reads UTF-8 (accents) right.
BOM = "\ufeff"


def cell(value: Any) -> str:
    """``value`` as a CSV cell that no spreadsheet evaluates ('' for None)."""
    text = "" if value is None else str(value)
    if text and text[0] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class CsvWriter:
    """``csv.writer`` whose every cell goes through :func:`cell`."""

    def __init__(self, out: TextIO) -> None:
        self._w = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([cell(v) for v in row])


def write(out: TextIO, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> int:
    """Write ``header`` and ``rows`` to ``out``; returns how many rows."""
    w = CsvWriter(out)
    w.writerow(header)
    n = 0
    for row in rows:
        w.writerow(row)
        n += 1
    return n


def chunks(header: Iterable[str], rows: Iterable[Iterable[Any]], *, bom: bool = True,
           size: int = 65536) -> Iterator[str]:
    """The same CSV as :func:`write`, in pieces of about ``size`` characters (for
    a streamed download), led by a :data:`BOM` unless ``bom`` is False."""
    buf = io.StringIO()
    if bom:
        buf.write(BOM)
    w = CsvWriter(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(row)
        if buf.tell() > size:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
