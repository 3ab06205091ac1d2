"""Server-side sessions of hosted mode.

The session cookie (signed by Flask) holds only a random session id and a form token; the server
keeps, per id, who signed in, their user record's session version and when the session ends. A
session is valid while its record exists, has not expired (an absolute lifetime from sign-in: using
the session does not extend it) and its version matches the user's (removing a user, changing their
role or password ends every session of theirs). Signing out deletes the record, so a copy of the
cookie opens nothing afterwards.

Records live in ``<users file>.sessions.json`` (mode 0600, next to the users file, outside what the SQL
console can read), keyed by the SHA-256 of the id (the file does not hold usable ids), rewritten
atomically under a lock at each sign-in and sign-out, and read (cached by mtime) at each request, so
every gunicorn worker sees the same sessions.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

from analytics.json_file import JsonFile

__all__ = ["SessionStore"]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class SessionStore:
    """Sessions in ``path``: ``{sha256(id): {"user", "v", "created", "expires"}}``; ``lifetime_s`` from sign-in."""

    def __init__(self, path: str | os.PathLike[str], lifetime_s: float):
        self.file = JsonFile(path)
        self.lifetime_s = float(lifetime_s)

    @property
    def path(self) -> Path:
        return self.file.path

    def create(self, user: str, version: str) -> str:
        """A new session of ``user`` (at user-record version ``version``); returns its id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()

        def fn(records: dict[str, Any]) -> None:
            for k in [k for k, r in records.items() if not isinstance(r, dict) or r.get("expires", 0) <= now]:
                del records[k]  # expired ones go at every sign-in
            records[_key(session_id)] = {"user": user, "v": version, "created": now, "expires": now + self.lifetime_s}
        self.file.update(fn)
        return session_id

    def get(self, session_id: Any) -> dict[str, Any] | None:
        """The live record of ``session_id`` (None if unknown, ended or expired)."""
        if not isinstance(session_id, str) or not session_id:
            return None
        rec = self.file.read().get(_key(session_id))
        if not isinstance(rec, dict) or not rec.get("expires", 0) > time.time():
            return None
        return rec

    def end(self, session_id: Any) -> None:
        """End the session (signing out); nothing happens for an unknown id."""
        if isinstance(session_id, str) and session_id:
            self.file.update(lambda records: records.pop(_key(session_id), None))
