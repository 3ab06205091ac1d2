"""Team notes: a plain-text note on a model, on a cluster (layer, state, k, cluster) or on a unit
(layer, state, unit), with its author and time; one row of the ``notes`` table each.

Who may write, edit or remove a note is the app's decision (:mod:`app.logic.notes`); this module keeps the
rows: it cuts a body at :data:`MAX_BODY` characters (saying so), refuses an empty one, searches bodies, and
removes a model's notes with the model (:func:`remove_model`).
"""
from __future__ import annotations

import datetime as dt
import os
from typing import NamedTuple

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.metadb import tables
from analytics.metadb.engine import Database, for_store

__all__ = ["MAX_BODY", "COLUMNS", "MAX_ROWS", "NoteError", "Target", "add", "edit", "get", "remove",
           "remove_model", "query", "clean_body"]

#: The longest body kept, in characters; a longer one is cut there and the writer told so.
MAX_BODY = 2_000
#: The columns of the ``notes`` table in SQL (the frame of :func:`query` has ``id`` first besides).
COLUMNS = ("model_id", "layer", "state", "k", "cluster", "unit", "body", "author", "created_at")
#: The most notes one read returns.
MAX_ROWS = 100_000
_EPOCH = dt.datetime(1970, 1, 1)


class NoteError(ValueError):
    """A note that cannot be written as given (the message says what to do)."""


class Target(NamedTuple):
    """What a note is on: a model (the rest None), a cluster (layer, state, k, cluster) or a unit (layer, state,
    unit)."""

    model_id: str
    layer: int | None = None
    state: str | None = None
    k: int | None = None
    cluster: int | None = None
    unit: int | None = None

    @property
    def kind(self) -> str:
        if self.unit is not None:
            return "unit"
        return "cluster" if self.cluster is not None else "model"

    def describe(self) -> str:
        """'model m', 'm layer 0 h, cluster H2 at k=6', 'm layer 0 h, unit 5'."""
        where = f"{self.model_id} layer {self.layer} {self.state}"
        if self.kind == "unit":
            return f"{where}, unit {self.unit}"
        if self.kind == "cluster":
            return f"{where}, cluster H{self.cluster} at k={self.k}"
        return f"model {self.model_id}"

    def checked(self) -> Target:
        """Itself, or NoteError when its parts do not make one of the three kinds."""
        if not self.model_id:
            raise NoteError("Pick a model to note.")
        if self.kind != "model" and (self.layer is None or not self.state):
            raise NoteError("A note on a cluster or a unit needs its layer and state.")
        if self.kind == "cluster" and self.k is None:
            raise NoteError("A note on a cluster needs the k it was clustered at.")
        return self


def _now() -> int:
    return (dt.datetime.now(dt.UTC).replace(tzinfo=None) - _EPOCH) // dt.timedelta(microseconds=1)


def _db(where: str | os.PathLike | Database) -> Database:
    return where if isinstance(where, Database) else for_store(where)


def clean_body(body: object) -> tuple[str, bool]:
    """(the body as stored, whether it was cut at :data:`MAX_BODY`); NoteError for an empty one. Plain text:
    kept as typed (the app shows it escaped), only its surrounding white space stripped."""
    text = body.strip() if isinstance(body, str) else ""
    if not text:
        raise NoteError("Write the note first (plain text, at most 2,000 characters).")
    return text[:MAX_BODY], len(text) > MAX_BODY


def add(where: str | os.PathLike | Database, target: Target, body: object, author: str) -> tuple[int, bool]:
    """Add a note: (its id, whether its body was cut)."""
    target = target.checked()
    text, cut = clean_body(body)
    cluster_k = target.k if target.kind == "cluster" else None
    with _db(where).write() as con:
        row = con.execute(tables.notes.insert().values(
            model_id=target.model_id, layer=None if target.kind == "model" else int(target.layer),
            state=None if target.kind == "model" else target.state, k=cluster_k,
            cluster=target.cluster if target.kind == "cluster" else None,
            unit=target.unit if target.kind == "unit" else None,
            body=text, author=str(author)[:200], created_at=_now()).returning(tables.notes.c.id)).scalar_one()
    return int(row), cut


def get(where: str | os.PathLike | Database, note_id: int) -> dict | None:
    """The note with this id as a dict of the table's columns, or None."""
    with _db(where).read() as con:
        row = con.execute(sa.select(tables.notes).where(tables.notes.c.id == int(note_id))).mappings().first()
    return None if row is None else dict(row)


def edit(where: str | os.PathLike | Database, note_id: int, body: object) -> bool:
    """Replace a note's body: whether it was cut; NoteError when the note is gone."""
    text, cut = clean_body(body)
    n = tables.notes.c
    with _db(where).write() as con:
        done = con.execute(tables.notes.update().where(n.id == int(note_id)).values(body=text, edited_at=_now()))
    if not done.rowcount:
        raise NoteError("That note is gone (removed meanwhile); reload the page.")
    return cut


def remove(where: str | os.PathLike | Database, note_id: int) -> bool:
    """Remove one note: whether it was there."""
    with _db(where).write() as con:
        return bool(con.execute(tables.notes.delete().where(tables.notes.c.id == int(note_id))).rowcount)


def remove_model(where: str | os.PathLike | Database | Connection, model_id: str) -> int:
    """Remove every note on ``model_id`` (the model was deleted): how many."""
    stmt = tables.notes.delete().where(tables.notes.c.model_id == model_id)
    if isinstance(where, Connection):
        return where.execute(stmt).rowcount
    with _db(where).write() as con:
        return con.execute(stmt).rowcount


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def query(where: str | os.PathLike | Database, *, model_id: str | None = None, layer: int | None = None,
          state: str | None = None, kind: str | None = None, k: int | None = None, unit: int | None = None,
          text: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Notes, newest first, as a frame of ``id``, :data:`COLUMNS` and ``edited_at`` (times naive UTC datetimes).

    Filters: exact model, layer, state, ``kind`` ('model', 'cluster' or 'unit'), ``k`` (cluster notes at that
    k), ``unit``; ``text`` anywhere in the body (case-insensitive)."""
    n = tables.notes.c
    stmt = sa.select(n.id, *(n[c] for c in COLUMNS), n.edited_at).order_by(n.created_at.desc(), n.id.desc())
    for col, value in (("model_id", model_id), ("layer", layer), ("state", state), ("k", k), ("unit", unit)):
        if value is not None:
            stmt = stmt.where(n[col] == value)
    if kind == "model":
        stmt = stmt.where(n.layer.is_(None))
    elif kind == "cluster":
        stmt = stmt.where(n.cluster.is_not(None))
    elif kind == "unit":
        stmt = stmt.where(n.unit.is_not(None))
    if text:
        stmt = stmt.where(sa.func.lower(n.body).like(_like(text), escape="\\"))
    with _db(where).read() as con:
        rows = con.execute(stmt.limit(max(1, min(int(limit), MAX_ROWS)))).all()
    df = pd.DataFrame(rows, columns=["id", *COLUMNS, "edited_at"])
    for col in ("created_at", "edited_at"):
        df[col] = pd.to_datetime(df[col].astype("Int64"), unit="us")
    for col in ("layer", "k", "cluster", "unit"):
        df[col] = df[col].astype("Int64")
    return df
