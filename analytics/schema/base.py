"""The schema's vocabulary: a column, a view, a partition kind, and the columns many views share."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Column", "View", "Kind", "cols", "MODEL_ID", "LAYER", "STATE"]


@dataclass(frozen=True)
class Column:
    """One column of a view: its name, DuckDB type and a one-line description."""

    name: str
    type: str
    description: str


@dataclass(frozen=True)
class View:
    """One public view.

    ``kind`` is the partition kind whose directories hold the view's Parquet
    files (``models``, ``sentences`` or ``jobs``); ``sort_by`` is the order
    rows are written in (it makes files smaller and filters faster).
    """

    name: str
    kind: str
    grain: str  # "one row per ..."
    description: str
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...] = ()
    # Parquet storage hints (the SQL types above stay the contract): FLOAT columns stored as float16
    # (DuckDB reads them back as FLOAT), integer columns delta-encoded, and rows per row group (0 = the writer's).
    half: tuple[str, ...] = ()
    delta: tuple[str, ...] = ()
    row_group_rows: int = 0

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.columns}


@dataclass(frozen=True)
class Kind:
    """A partition kind: ``<root>/<name>/<key>=<id>/<view>.parquet``.

    ``key`` is the id column every view of the kind carries (the partition's
    id); ``primary`` is the view every partition must contain.
    """

    name: str
    key: str
    primary: str
    views: tuple[str, ...] = field(default=())


def cols(*specs: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


MODEL_ID = ("model_id", "VARCHAR", "Model id (also the name of its store partition).")
LAYER = ("layer", "INTEGER", "Recurrent layer, 0 = closest to the input.")
STATE = ("state", "VARCHAR", "State kind: 'h', 'c' (LSTM cell) or a gate name (e.g. 'i', 'f', 'o', 'z', 'r').")
