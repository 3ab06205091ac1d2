"""Saved SQL queries, per user, in the metadata database's ``saved_queries`` table (:mod:`analytics.metadb`).

Outside what the SQL sandbox may read. One row per (user, name): ``sql``, ``created_by``, ``created_at``;
each change is one transaction, so concurrent saves from several app processes or hosts never lose one
another. The ``<store>/saved_queries/<user>.json`` files of older versions are imported on the first use.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from analytics import metadb

__all__ = ["SavedQueryError", "list_queries", "save_query", "delete_query", "MAX_QUERIES", "MAX_SQL_CHARS"]

DIRNAME = "saved_queries"
MAX_QUERIES = 200
MAX_SQL_CHARS = 100_000
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_Q = metadb.tables.saved_queries


class SavedQueryError(ValueError):
    """Bad name, too many queries, unknown user name, ..."""


def _db(root: str | os.PathLike[str], user: str) -> metadb.Database:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise SavedQueryError(f"invalid user name {user!r}")
    db = metadb.for_store(root)
    db.import_once(DIRNAME, lambda con: metadb.legacy.import_saved_queries(con, Path(root) / DIRNAME))
    return db


def _rows(con, user: str) -> list[dict[str, Any]]:
    stmt = sa.select(_Q.c.name, _Q.c.sql, _Q.c.created_by, _Q.c.created_at).where(_Q.c.user_name == user)
    return sorted((r._asdict() for r in con.execute(stmt)), key=lambda q: q["name"].lower())


def list_queries(root: str | os.PathLike[str], user: str) -> list[dict[str, Any]]:
    """The user's saved queries (``{name, sql, created_by, created_at}``), sorted by name."""
    with _db(root, user).read() as con:
        return _rows(con, user)


def save_query(root: str | os.PathLike[str], user: str, name: str, sql: str) -> list[dict[str, Any]]:
    """Save (or replace) the user's query called ``name``; returns the user's queries."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise SavedQueryError("give the query a name (1-100 characters)")
    if not (sql or "").strip():
        raise SavedQueryError("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SavedQueryError(f"the query is longer than {MAX_SQL_CHARS:,} characters")
    with _db(root, user).write() as con:
        con.execute(_Q.delete().where(_Q.c.user_name == user, _Q.c.name == name))
        count = con.execute(sa.select(sa.func.count()).select_from(_Q).where(_Q.c.user_name == user)).scalar_one()
        if count >= MAX_QUERIES:
            raise SavedQueryError(f"at most {MAX_QUERIES} saved queries per user; delete some first")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        con.execute(_Q.insert().values(user_name=user, name=name, sql=sql, created_by=user, created_at=now))
        return _rows(con, user)


def delete_query(root: str | os.PathLike[str], user: str, name: str) -> list[dict[str, Any]]:
    """Delete the user's query called ``name`` (no error if absent); returns the user's queries."""
    with _db(root, user).write() as con:
        con.execute(_Q.delete().where(_Q.c.user_name == user, _Q.c.name == name))
        return _rows(con, user)
