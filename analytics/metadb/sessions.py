"""Server-side sessions of hosted mode: one row of the ``sessions`` table per signed-in browser.

A row is keyed by the SHA-256 of the session id (:func:`key_of`: the table holds no usable id), with the user,
their user record's session version ``v``, and when the session was created and when it expires (seconds since
the epoch). Which ids exist, how long a session lives and when a version still matches are the app's decisions
(:mod:`app.hosted.sessions`); this module keeps the rows: it adds one (dropping the expired ones on the way),
reads a live one, and removes one or every one of a user's. The ``<users file>.sessions.json`` of older versions
is imported once (:func:`import_legacy`).

``where``: a store root or a :class:`Database` (a transaction of its own), or the connection of a transaction
(the change commits with the caller's, e.g. removing a user in :func:`analytics.metadb.users.delete`).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.metadb import legacy, tables
from analytics.metadb.engine import Database, run

__all__ = ["key_of", "add", "get", "end", "end_user", "import_legacy"]

_S = tables.sessions


def key_of(session_id: str) -> str:
    """The table's key of ``session_id``: its SHA-256, in hex."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


def add(where: str | os.PathLike | Database | Connection, session_id: str, user: str, version: str,
        lifetime_s: float) -> None:
    """Record a new session of ``user`` at user-record version ``version``, expiring ``lifetime_s`` seconds from
    now; every session already expired is removed in the same transaction."""
    now = time.time()

    def fn(con: Connection) -> None:
        con.execute(_S.delete().where(_S.c.expires <= now))
        con.execute(_S.insert().values(key=key_of(session_id), user_name=user, v=version, created=now,
                                       expires=now + float(lifetime_s)))

    run(where, fn, write=True)


def get(where: str | os.PathLike | Database | Connection, session_id: str) -> dict[str, Any] | None:
    """The live (unexpired) record of ``session_id`` as ``{"user", "v", "created", "expires"}``, or None."""
    stmt = sa.select(_S).where(_S.c.key == key_of(session_id), _S.c.expires > time.time())
    row = run(where, lambda con: con.execute(stmt).first(), write=False)
    if row is None:
        return None
    return {"user": row.user_name, "v": row.v, "created": row.created, "expires": row.expires}


def end(where: str | os.PathLike | Database | Connection, session_id: str) -> bool:
    """Remove the record of ``session_id`` (signing out): whether there was one."""
    stmt = _S.delete().where(_S.c.key == key_of(session_id))
    return bool(run(where, lambda con: con.execute(stmt).rowcount, write=True))


def end_user(where: str | os.PathLike | Database | Connection, user: str) -> int:
    """Remove every session of ``user`` (the user was removed): how many."""
    stmt = _S.delete().where(_S.c.user_name == user)
    return int(run(where, lambda con: con.execute(stmt).rowcount, write=True))


def import_legacy(db: Database, path: str | os.PathLike) -> None:
    """Import the live sessions of an older sessions file (``<users file>.sessions.json``), once per database
    (:meth:`Database.import_once`, under the source ``sessions:<file name>``)."""
    path = Path(path)
    db.import_once(f"sessions:{path.name}", lambda con: legacy.import_sessions(con, path))
