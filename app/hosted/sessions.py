"""Server-side sessions of hosted mode.

The session cookie (signed by Flask) holds only a random session id and a form token; the server
keeps, per id, who signed in, their user record's session version and when the session ends. A
session is valid while its record exists, has not expired (an absolute lifetime from sign-in: using
the session does not extend it) and its version matches the user's (removing a user, changing their
role or password ends every session of theirs). Signing out deletes the record, so a copy of the
cookie opens nothing afterwards.

Records live in the metadata database's ``sessions`` table (:mod:`analytics.metadb.sessions` reads and
writes them: PostgreSQL, or SQLite in the store; outside what the SQL console can read), keyed by the SHA-256
of the id (the table holds no usable ids), so every web worker of every host sees the same sessions. The
``<users file>.sessions.json`` of older versions is imported on the first start (its users stay signed in).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from analytics import metadb

__all__ = ["SessionStore"]


class SessionStore:
    """Sessions (``key = sha256(id)``, user, version, created, expires); ``lifetime_s`` from sign-in.

    ``path`` is the sessions file of older versions (imported once); ``db`` the metadata database (by
    default the one of the store holding ``path``)."""

    def __init__(self, path: str | os.PathLike[str], lifetime_s: float, db: metadb.Database | None = None):
        self.path = Path(path)
        self.lifetime_s = float(lifetime_s)
        self.db = db if db is not None else metadb.for_store(self.path.parent)
        metadb.sessions.import_legacy(self.db, self.path)

    def create(self, user: str, version: str) -> str:
        """A new session of ``user`` (at user-record version ``version``); returns its id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        metadb.sessions.add(self.db, session_id, user, version, self.lifetime_s)  # expired ones go at every sign-in
        return session_id

    def get(self, session_id: Any) -> dict[str, Any] | None:
        """The live record of ``session_id`` (None if unknown, ended or expired): user, v, created, expires."""
        if not isinstance(session_id, str) or not session_id:
            return None
        return metadb.sessions.get(self.db, session_id)

    def end(self, session_id: Any) -> None:
        """End the session (signing out); nothing happens for an unknown id."""
        if isinstance(session_id, str) and session_id:
            metadb.sessions.end(self.db, session_id)
