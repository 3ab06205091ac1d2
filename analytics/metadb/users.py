"""The users of hosted mode: one row of the ``users`` table each (name, role, password hash, created_at,
created_by, and the session version: a new one ends every session of the user).

Who may be a user, the roles, the password policy and hashing, and rules such as "never remove the last admin"
are the app's (:mod:`app.hosted.users`); this module keeps the rows: it reads them, inserts, updates and deletes
one (deleting a user deletes their sessions too), and imports the ``users.json`` of older versions once
(:func:`import_legacy`).

``where``: a store root or a :class:`Database` (a transaction of its own), or the connection of a transaction,
so that what the caller read there stays true until its change commits (the last admin) and an audit event
commits with the change it records.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.metadb import legacy, sessions, tables
from analytics.metadb.engine import Database, run

__all__ = ["COLUMNS", "import_legacy", "load", "get", "exists", "count", "insert", "update", "delete"]

#: The columns of the ``users`` table: the keys of each user's dict.
COLUMNS = ("name", "role", "hash", "created_at", "created_by", "session")

_U = tables.users


def import_legacy(db: Database, path: str | os.PathLike) -> None:
    """Import the users of an older ``users.json``, once per database (:meth:`Database.import_once`, under the
    source ``users:<file name>``); ValueError, naming the file, when it is damaged."""
    path = Path(path)
    db.import_once(f"users:{path.name}", lambda con: legacy.import_users(con, path))


def load(where: str | os.PathLike | Database | Connection) -> dict[str, dict[str, Any]]:
    """Every user: name -> a dict of :data:`COLUMNS`."""
    return run(where, lambda con: {r["name"]: dict(r) for r in con.execute(sa.select(_U)).mappings()},
                write=False)


def get(where: str | os.PathLike | Database | Connection, name: str) -> dict[str, Any] | None:
    """The user called ``name`` as a dict of :data:`COLUMNS`, or None."""
    stmt = sa.select(_U).where(_U.c.name == name)
    row = run(where, lambda con: con.execute(stmt).mappings().first(), write=False)
    return None if row is None else dict(row)


def exists(where: str | os.PathLike | Database | Connection, name: str) -> bool:
    """Whether there is a user called ``name``."""
    stmt = sa.select(_U.c.name).where(_U.c.name == name)
    return run(where, lambda con: con.execute(stmt).first() is not None, write=False)


def count(where: str | os.PathLike | Database | Connection) -> int:
    """How many users there are."""
    stmt = sa.select(sa.func.count()).select_from(_U)
    return int(run(where, lambda con: con.execute(stmt).scalar_one(), write=False))


def insert(where: str | os.PathLike | Database | Connection, name: str, role: str, password_hash: str, *,
           session: str, created_at: str | None = None, created_by: str | None = None) -> None:
    """Add the user ``name`` with this (already hashed) password (the caller has checked that there is none yet:
    the name is the key)."""
    stmt = _U.insert().values(name=name, role=role, hash=password_hash, created_at=created_at,
                              created_by=created_by, session=session)
    run(where, lambda con: con.execute(stmt), write=True)


def update(where: str | os.PathLike | Database | Connection, name: str, *, role: str | None = None,
           password_hash: str | None = None, session: str | None = None) -> bool:
    """Change the user ``name``'s role, password hash (column ``hash``) or session version, those given (the
    rest stay): whether there was such a user."""
    values = {k: v for k, v in (("role", role), ("hash", password_hash), ("session", session)) if v is not None}
    if not values:
        return exists(where, name)
    stmt = _U.update().where(_U.c.name == name).values(**values)
    return bool(run(where, lambda con: con.execute(stmt).rowcount, write=True))


def delete(where: str | os.PathLike | Database | Connection, name: str) -> bool:
    """Remove the user ``name`` and every session of theirs, in one transaction: whether there was such a user."""

    def fn(con: Connection) -> bool:
        done = con.execute(_U.delete().where(_U.c.name == name)).rowcount
        sessions.end_user(con, name)
        return bool(done)

    return run(where, fn, write=True)
