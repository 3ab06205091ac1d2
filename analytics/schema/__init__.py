"""The public schema of the store, as data.

Every view that :func:`analytics.store.connect` creates is described here:
its name, what one row is, which partition kind holds its files, and its
columns as ``(name, DuckDB type, description)``. The names, order and types
are a contract (users write SQL against them; the SQL console shows them);
new columns may only be appended at the end of a view.

The package imports nothing heavy, so the app can render the schema without
loading pyarrow or DuckDB: :mod:`.base` (column, view, kind), the views in
:mod:`.analysis` (what an analysis writes about states), :mod:`.outcomes`
(losses, class outcomes, ablations), :mod:`.probes` (POS probes) and :mod:`.records` (jobs).
"""
from __future__ import annotations

from .analysis import ANALYSIS_VIEWS
from .base import Column, Kind, View
from .outcomes import OUTCOME_VIEWS
from .probes import PROBE_VIEWS
from .records import ADMIN_VIEWS as _ADMIN_VIEW_LIST
from .records import RECORD_VIEWS
from .records import TEAM_VIEWS as _TEAM_VIEW_LIST

__all__ = [
    "Column",
    "View",
    "Kind",
    "VIEWS",
    "ADMIN_VIEWS",
    "TEAM_VIEWS",
    "KINDS",
    "view",
    "kind_of",
    "as_markdown",
]

_VIEW_LIST: tuple[View, ...] = ANALYSIS_VIEWS + OUTCOME_VIEWS + PROBE_VIEWS + RECORD_VIEWS

#: Every public view, by name, in documentation order.
VIEWS: dict[str, View] = {v.name: v for v in _VIEW_LIST}

#: Tables of the metadata database that only an admin's SQL console sees, by name (not store views).
ADMIN_VIEWS: dict[str, View] = {v.name: v for v in _ADMIN_VIEW_LIST}

#: Tables of the metadata database that every role's SQL console sees, by name (not store views).
TEAM_VIEWS: dict[str, View] = {v.name: v for v in _TEAM_VIEW_LIST}

#: Partition kinds, by name.
KINDS: dict[str, Kind] = {
    name: Kind(name, key, primary, tuple(v.name for v in _VIEW_LIST if v.kind == name))
    for name, key, primary in (
        ("models", "model_id", "models"),
        ("sentences", "sentence_id", "sentences"),
        ("jobs", "job_id", "jobs"),
    )
}


def view(name: str) -> View:
    """The view called ``name``; KeyError listing the known views otherwise."""
    try:
        return VIEWS[name]
    except KeyError:
        raise KeyError(f"unknown view {name!r}; known views: {', '.join(VIEWS)}") from None


def kind_of(name: str) -> Kind:
    """The partition kind that holds view ``name``."""
    return KINDS[view(name).kind]


def as_markdown() -> str:
    """The schema as Markdown (one section per view); docs/store-schema.md is rendered by analytics.schema_doc."""
    out: list[str] = []
    for v in VIEWS.values():
        out.append(f"### `{v.name}`\n\n{v.description} One row per {v.grain}.\n")
        out.append("| column | type | description |\n|---|---|---|")
        out.extend(f"| `{c.name}` | {c.type} | {c.description} |" for c in v.columns)
        out.append("")
    return "\n".join(out)
