"""Server-side sessions of hosted mode.

The session cookie (signed by Flask) holds only a random session id and a form token; the server
keeps, per id, who signed in, their user record's session version and when the session ends. A
session is valid while its record exists, has not expired (an absolute lifetime from sign-in: using
the session does not extend it) and its version matches the user's (removing a user, changing their
role or password ends every session of theirs). Signing out deletes the record, so a copy of the
cookie opens nothing afterwards.

Records live in the metadata database's ``sessions`` table (:mod:`analytics.metadb`: PostgreSQL, or
SQLite in the store; outside what the SQL console can read), keyed by the SHA-256 of the id (the table
holds no usable ids), so every web worker of every host sees the same sessions. The
``<users file>.sessions.json`` of older versions is imported on the first start (its users stay signed in).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from analytics import metadb

__all__ = ["SessionStore"]

_S = metadb.tables.sessions


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class SessionStore:
    """Sessions (``key = sha256(id)``, user, version, created, expires); ``lifetime_s`` from sign-in.

    ``path`` is the sessions file of older versions (imported once); ``db`` the metadata database (by
    default the one of the store holding ``path``)."""

    def __init__(self, path: str | os.PathLike[str], lifetime_s: float, db: metadb.Database | None = None):
        self.path = Path(path)
        self.lifetime_s = float(lifetime_s)
        self.db = db if db is not None else metadb.for_store(self.path.parent)
        self.db.import_once(f"sessions:{self.path.name}", lambda con: metadb.legacy.import_sessions(con, self.path))

    def create(self, user: str, version: str) -> str:
        """A new session of ``user`` (at user-record version ``version``); returns its id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.write() as con:
            con.execute(_S.delete().where(_S.c.expires <= now))  # expired ones go at every sign-in
            con.execute(_S.insert().values(key=_key(session_id), user_name=user, v=version, created=now,
                                           expires=now + self.lifetime_s))
        return session_id

    def get(self, session_id: Any) -> dict[str, Any] | None:
        """The live record of ``session_id`` (None if unknown, ended or expired): user, v, created, expires."""
        if not isinstance(session_id, str) or not session_id:
            return None
        with self.db.read() as con:
            row = con.execute(sa.select(_S).where(_S.c.key == _key(session_id), _S.c.expires > time.time())).first()
        if row is None:
            return None
        return {"user": row.user_name, "v": row.v, "created": row.created, "expires": row.expires}

    def end(self, session_id: Any) -> None:
        """End the session (signing out); nothing happens for an unknown id."""
        if isinstance(session_id, str) and session_id:
            with self.db.write() as con:
                con.execute(_S.delete().where(_S.c.key == _key(session_id)))
