"""Saved SQL queries, per user: ``<store>/saved_queries/<user>.json``.

Outside the directories the SQL sandbox may read. Each file holds a list of
``{name, sql, created_by, created_at}``, rewritten atomically (temporary file +
``os.replace``) under a lock file, so concurrent saves from several app
processes never lose or corrupt one another.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

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


def list_queries(root: str | os.PathLike[str], user: str) -> list[dict[str, Any]]:
    """The user's saved queries, sorted by name."""
    path = _file(root, user)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError as e:
        raise SavedQueryError(f"cannot read {path}: {e}") from e
    return sorted(data.get("queries", []), key=lambda q: q["name"].lower())


def _update(root: str | os.PathLike[str], user: str, fn) -> list[dict[str, Any]]:
    path = _file(root, user)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        queries = fn(list_queries(root, user))
        tmp = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{user}.", suffix=".tmp", delete=False,
                                          encoding="utf-8")
        try:
            with tmp:
                json.dump({"user": user, "queries": queries}, tmp, indent=1, ensure_ascii=False)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, path)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
        return sorted(queries, key=lambda q: q["name"].lower())
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        return queries + [{"name": name, "sql": sql, "created_by": user, "created_at": now}]
    return _update(root, user, fn)


def delete_query(root: str | os.PathLike[str], user: str, name: str) -> list[dict[str, Any]]:
    """Delete the user's query called ``name`` (no error if absent); returns the user's queries."""
    return _update(root, user, lambda queries: [q for q in queries if q["name"] != name])
