"""docs/store-schema.md, generated from the declared views of :mod:`analytics.schema`.

``python -m analytics.schema_doc`` rewrites the file; ``tests/analytics/test_schema_doc.py`` fails
when the committed file differs from :func:`render`. Imports nothing heavy (no DuckDB, no pyarrow).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analytics.schema import ADMIN_VIEWS, KINDS, TEAM_VIEWS, VIEWS, Kind, View

__all__ = ["DOC_PATH", "main", "render"]

#: Where the generated page lives in a checkout.
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "store-schema.md"

_HEADER = """\
# Store schema

<!-- Generated from analytics/schema/ by `python -m analytics.schema_doc`; do not edit by hand. -->

These are the views that `analytics.store.connect()` creates on every connection, that
`rnnvis sql` and the SQL console query, and that the dashboard reads. View names, column
names, their order and their types are a contract: new columns are only ever appended at
the end of a view. How the files behind the views are written and replaced:
[architecture.md](architecture.md#the-store).
"""

_TEAM_HEADER = """\
## Team tables

Every role's SQL console also sees these tables of the metadata database.
"""

_ADMIN_HEADER = """\
## Admin-only tables

An admin's SQL console (and nobody else's) also sees these tables of the metadata database; for
any other role a query naming them is refused.
"""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _codes(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _kinds_table(kinds: Sequence[Kind]) -> str:
    """One row per partition kind: its directory, key column, required view and views."""
    rows = ["| partition kind | directory | key column | must contain | views |", "|---|---|---|---|---|"]
    rows += [f"| `{k.name}` | `<store>/{k.name}/{k.key}=<id>/` | `{k.key}` | `{k.primary}` | {_codes(k.views)} |"
             for k in kinds]
    return "## Partitions\n\nEach view reads the Parquet files of one partition kind:\n\n" + "\n".join(rows) + "\n"


def _storage_notes(v: View) -> list[str]:
    """How a view's rows are laid out on disk, when the schema says anything about it."""
    notes = []
    if v.sort_by:
        notes.append(f"Sort order: {_codes(v.sort_by)}.")
    if v.half:
        notes.append(f"{_codes(v.half)} stored as float16 (read back as FLOAT).")
    if v.delta:
        notes.append(f"{_codes(v.delta)} delta-encoded.")
    if v.row_group_rows:
        notes.append(f"{v.row_group_rows:,} rows per row group.")
    return notes


def _view_section(v: View) -> str:
    """The section of one view: what a row is, where it lives, its columns."""
    lines = [f"### `{v.name}`", "", f"{v.description} One row per {v.grain}.", ""]
    if v.kind in KINDS:
        lines.append(" ".join([f"Partition kind: `{v.kind}`."] + _storage_notes(v)))
    else:
        lines.append("A table of the metadata database (PostgreSQL or SQLite), not a Parquet view.")
    lines += ["", "| column | type | description |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {_cell(c.description)} |" for c in v.columns]
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole page as Markdown."""
    views = "\n".join(_view_section(v) for v in VIEWS.values())
    team = "\n".join(_view_section(v) for v in TEAM_VIEWS.values())
    admin = "\n".join(_view_section(v) for v in ADMIN_VIEWS.values())
    return "\n".join([_HEADER, _kinds_table(list(KINDS.values())), "## Views\n", views, _TEAM_HEADER, team,
                      _ADMIN_HEADER, admin]).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write :func:`render` to ``docs/store-schema.md`` (or the path given)."""
    ap = argparse.ArgumentParser(prog="python -m analytics.schema_doc", description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=DOC_PATH, help=f"default: {DOC_PATH}")
    args = ap.parse_args(argv)
    args.out.write_text(render(), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
