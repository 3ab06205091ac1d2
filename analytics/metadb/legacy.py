"""Importing what older versions kept in files into the metadata database, once (:meth:`Database.import_once`).

- ``users.json`` (``{"users": {name: {role, hash, created_at, created_by, session}}}``);
- ``users.sessions.json`` (``{sha256(id): {user, v, created, expires}}``; live sessions stay signed in);
- ``saved_queries/<user>.json`` (``{"user", "queries": [{name, sql, created_by, created_at}]}``);
- ``.jobs.sqlite`` (tables ``jobs`` and ``claims``).

Rows whose key the database already has are left as they are, so an import never overwrites newer data.
The files themselves are left in place (a downgrade still finds them) and read again by nobody.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.metadb import tables

log = logging.getLogger(__name__)

__all__ = ["import_users", "import_sessions", "import_saved_queries", "import_job_sqlite"]


def _insert_new(con: Connection, table: sa.Table, rows: Iterable[dict[str, Any]], key: Sequence[str]) -> int:
    """Insert the rows whose ``key`` columns are not in ``table`` yet; returns how many."""
    have = {tuple(r) for r in con.execute(sa.select(*(table.c[k] for k in key)))}
    new, seen = [], set()
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in have and k not in seen:
            seen.add(k)
            new.append(r)
    if new:
        con.execute(table.insert(), new)
    return len(new)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def import_users(con: Connection, path: Path) -> int:
    """Users of an older ``users.json``. A damaged file stops the start with its path (never skipped:
    skipping it would lock every user out)."""
    try:
        data = _json(path) or {}
        if not isinstance(data, dict) or not isinstance(data.get("users", {}), dict):
            raise ValueError("not an object with a 'users' object")
    except ValueError as e:
        raise ValueError(f"cannot import the users file {path}: {e}; repair or remove it") from e
    rows = [{"name": n, "role": u["role"], "hash": u["hash"], "created_at": u.get("created_at"),
             "created_by": u.get("created_by"), "session": str(u.get("session", ""))}
            for n, u in (data.get("users") or {}).items() if isinstance(u, dict)]
    n = _insert_new(con, tables.users, rows, ["name"])
    if n:
        log.info("imported %d users from %s", n, path)
    return n


def import_sessions(con: Connection, path: Path) -> int:
    """Live sessions of an older ``users.sessions.json`` (expired ones and a damaged file are dropped:
    their users sign in again)."""
    try:
        data = _json(path) or {}
    except ValueError:
        log.warning("sessions file %s is damaged: not imported (everyone signs in again)", path)
        return 0
    now = time.time()
    rows = [{"key": k, "user_name": r["user"], "v": str(r.get("v", "")), "created": float(r.get("created", now)),
             "expires": float(r["expires"])}
            for k, r in data.items() if isinstance(r, dict) and "user" in r and float(r.get("expires", 0)) > now]
    return _insert_new(con, tables.sessions, rows, ["key"])


def import_saved_queries(con: Connection, folder: Path) -> int:
    """Every user's saved queries of an older ``saved_queries/`` folder."""
    rows = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = _json(f) or {}
        except ValueError:
            log.warning("saved queries file %s is damaged: not imported", f)
            continue
        user = data.get("user") or f.stem
        rows += [{"user_name": user, "name": q["name"], "sql": q["sql"], "created_by": q.get("created_by", user),
                  "created_at": q.get("created_at")} for q in data.get("queries", []) if isinstance(q, dict)]
    return _insert_new(con, tables.saved_queries, rows, ["user_name", "name"])


def import_job_sqlite(con: Connection, path: Path) -> int:
    """Job records and model-id claims of an older ``.jobs.sqlite``."""
    if not path.is_file():
        return 0
    old = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        names = {r[0] for r in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        n = 0
        if "jobs" in names:
            have = [r[1] for r in old.execute("PRAGMA table_info(jobs)") if r[1] in tables.jobs.c]
            cur = old.execute(f"SELECT {', '.join(have)} FROM jobs")
            n = _insert_new(con, tables.jobs, (dict(zip(have, row)) for row in cur), ["job_id"])
        if "claims" in names:
            cur = old.execute("SELECT model_id, job_id, claimed_at FROM claims")
            _insert_new(con, tables.claims, (dict(zip(("model_id", "job_id", "claimed_at"), r)) for r in cur),
                        ["model_id"])
    finally:
        old.close()
    if n:
        log.info("imported %d job records from %s", n, path)
    return n
