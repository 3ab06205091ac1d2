"""Saved SQL queries, per user: ``<store>/saved_queries/<user>.json``.

Outside the directories the SQL sandbox may read. Each file holds a list of
``{name, sql, created_by, created_at}``, rewritten atomically under a lock file
(:class:`analytics.json_file.JsonFile`), so concurrent saves from several app
processes never lose or corrupt one another.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

from .json_file import JsonFile

__all__ = ["SavedQueryError", "list_queries", "save_query", "delete_query", "MAX_QUERIES", "MAX_SQL_CHARS"]

DIRNAME = "saved_queries"
MAX_QUERIES = 200
MAX_SQL_CHARS = 100_000
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SavedQueryError(ValueError):
    """Bad name, too many queries, unknown user name, ..."""


def _file(root: str | os.PathLike[str], user: str) -> Path:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise SavedQueryError(f"invalid user name {user!r}")
    return Path(root) / DIRNAME / f"{user}.json"


def _json(root: str | os.PathLike[str], user: str) -> JsonFile:
    return JsonFile(_file(root, user), strict=True, indent=1)


def _sorted(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(queries, key=lambda q: q["name"].lower())


def list_queries(root: str | os.PathLike[str], user: str) -> list[dict[str, Any]]:
    """The user's saved queries, sorted by name."""
    f = _json(root, user)
    try:
        return _sorted(f.read().get("queries", []))
    except (OSError, ValueError) as e:
        raise SavedQueryError(f"cannot read {f.path}: {e}") from e


def _update(root: str | os.PathLike[str], user: str, fn) -> list[dict[str, Any]]:
    """Replace the user's queries by ``fn(queries)``, atomically under the file's lock; returns them sorted."""
    def apply(data: dict[str, Any]) -> list[dict[str, Any]]:
        data["user"], data["queries"] = user, fn(data.get("queries", []))
        return data["queries"]
    try:
        return _sorted(_json(root, user).update(apply))
    except SavedQueryError:
        raise
    except ValueError as e:  # a damaged file
        raise SavedQueryError(f"cannot read the saved queries of {user}: {e}") from e


def save_query(root: str | os.PathLike[str], user: str, name: str, sql: str) -> list[dict[str, Any]]:
    """Save (or replace) the user's query called ``name``; returns the user's queries."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise SavedQueryError("give the query a name (1-100 characters)")
    if not (sql or "").strip():
        raise SavedQueryError("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SavedQueryError(f"the query is longer than {MAX_SQL_CHARS:,} characters")

    def fn(queries):
        queries = [q for q in queries if q["name"] != name]
        if len(queries) >= MAX_QUERIES:
            raise SavedQueryError(f"at most {MAX_QUERIES} saved queries per user; delete some first")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        return queries + [{"name": name, "sql": sql, "created_by": user, "created_at": now}]
    return _update(root, user, fn)


def delete_query(root: str | os.PathLike[str], user: str, name: str) -> list[dict[str, Any]]:
    """Delete the user's query called ``name`` (no error if absent); returns the user's queries."""
    return _update(root, user, lambda queries: [q for q in queries if q["name"] != name])
