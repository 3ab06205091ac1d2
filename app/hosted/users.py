"""Users and roles of hosted mode: the users file, its argon2id hashes, and the User record.

Users live in the metadata database (:mod:`analytics.metadb.users` reads and writes
them: PostgreSQL, or SQLite in the store; never visible to the SQL console), with argon2id
password hashes (argon2-cffi); the ``users.json`` of older versions
(``<store>/users.json`` unless ``RNNVIS_USERS_FILE`` says otherwise) is
imported on the first start. Adding, removing and re-roling a user is written
to the audit log. Roles, each including the ones before it:

- ``viewer``: browse every page, run SQL, save own queries;
- ``member``: also submit and cancel jobs, upload corpora and models, evaluate sentences;
- ``admin``: also delete models and manage users.

Passwords follow :mod:`app.hosted.passwords`.  Sign-in, sessions and the gate in
front of every route are :mod:`app.hosted.auth`'s.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics import metadb
from analytics.metadb import audit
from app.hosted import passwords

if TYPE_CHECKING:
    from analytics.settings import Settings

ROLES = ("viewer", "member", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = passwords.MIN_LENGTH
MAX_PASSWORD = passwords.MAX_LENGTH


class AuthError(Exception):
    """Bad user input for the user store (unknown user, bad name, weak password, ...)."""


class PermissionDenied(PermissionError):
    """The signed-in user's role does not allow the action; ``str(e)`` is a message for them."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user has ``role`` or a higher one."""
        return RANK.get(self.role, -1) >= RANK[role]


#: The implicit user of open mode (and of code running outside a request: CLI, tests).
LOCAL = User("local", "admin")


def check_role(role: str) -> str:
    if role not in RANK:
        raise AuthError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise AuthError(f"invalid user name {name!r}: 1-64 characters from A-Z a-z 0-9 . _ -, "
                        "starting with a letter or digit")
    return name


def _hasher():
    from argon2 import PasswordHasher
    return PasswordHasher()  # argon2id, the library's current recommended parameters


# --------------------------------------------------------------------------- the users table


class UserStore:
    """Users in the metadata database's ``users`` table (name, role, hash, created_at, created_by, session).

    ``path`` is where older versions kept them (``users.json``): its users are imported on the first start.
    ``db`` is the metadata database (by default the one of the store holding ``path``)."""

    def __init__(self, path: str | os.PathLike[str], db: metadb.Database | None = None):
        self.path = Path(path)
        self.db = db if db is not None else metadb.for_store(self.path.parent)
        try:
            metadb.users.import_legacy(self.db, self.path)
        except ValueError as e:
            raise AuthError(str(e)) from e

    # reading
    def _load(self, con=None) -> dict[str, dict[str, Any]]:
        return metadb.users.load(self.db if con is None else con)

    def get(self, name: str) -> dict[str, Any] | None:
        if not isinstance(name, str):
            return None
        return metadb.users.get(self.db, name)

    def list(self) -> list[dict[str, Any]]:
        """Users (without hashes), sorted by name."""
        return [{"name": n, "role": u["role"], "created_at": u.get("created_at"), "created_by": u.get("created_by")}
                for n, u in sorted(self._load().items())]

    def __len__(self) -> int:
        return metadb.users.count(self.db)

    def user(self, name: str, session: str | None = None) -> User | None:
        """The user called ``name`` if it exists (and, if given, its session version matches)."""
        rec = self.get(name)
        if rec is None or (session is not None and not hmac.compare_digest(str(rec.get("session", "")), session)):
            return None
        return User(name, rec["role"])

    def verify(self, name: str, password: str) -> tuple[User, str] | None:
        """(user, session version) if the password is right, else None (same cost for unknown users)."""
        from argon2.exceptions import InvalidHashError, VerificationError
        ph = _hasher()
        rec = self.get(name)
        stored = rec["hash"] if rec else _DUMMY_HASH
        try:
            ph.verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if rec is None:
            return None
        if ph.check_needs_rehash(stored):
            with contextlib.suppress(AuthError):
                self.set_password(name, password, bump_session=False)
        return User(name, rec["role"]), str(rec.get("session", ""))

    # writing: each change is one write transaction (so "the last admin" stays true until it commits)
    @staticmethod
    def _check_password(password: str, name: str) -> None:
        problem = passwords.problem(password, name)
        if problem:
            raise AuthError(problem)

    def add(self, name: str, password: str, role: str, *, created_by: str = "cli") -> User:
        check_name(name)
        check_role(role)
        self._check_password(password, name)
        digest = _hasher().hash(password)
        with self.db.write() as con:
            if metadb.users.exists(con, name):
                raise AuthError(f"user {name!r} already exists (use set-role or passwd)")
            metadb.users.insert(con, name, role, digest, created_at=_now(), created_by=created_by,
                                session=secrets.token_hex(8))
            audit.record(con, created_by, "user added", name, {"role": role})
        return User(name, role)

    def _require(self, users: dict, name: str) -> dict:
        if name not in users:
            raise AuthError(f"no user {name!r}; users: {', '.join(sorted(users)) or '(none)'}")
        return users[name]

    @staticmethod
    def _admins(users: dict) -> list[str]:
        return [n for n, u in users.items() if u.get("role") == "admin"]

    def set_role(self, name: str, role: str, *, by: str = "cli") -> None:
        check_role(role)
        with self.db.write() as con:
            users = self._load(con)
            rec = self._require(users, name)
            if rec["role"] == "admin" and role != "admin" and self._admins(users) == [name]:
                raise AuthError(f"{name!r} is the last admin; make another user admin first")
            metadb.users.update(con, name, role=role, session=secrets.token_hex(8))
            audit.record(con, by, "user role changed", name, {"from": rec["role"], "to": role})

    def set_password(self, name: str, password: str, *, bump_session: bool = True) -> None:
        self._check_password(password, name)
        digest = _hasher().hash(password)
        with self.db.write() as con:
            self._require(self._load(con), name)
            metadb.users.update(con, name, password_hash=digest,
                                session=secrets.token_hex(8) if bump_session else None)

    def remove(self, name: str, *, by: str = "cli") -> None:
        with self.db.write() as con:
            users = self._load(con)
            rec = self._require(users, name)
            if rec["role"] == "admin" and self._admins(users) == [name] and len(users) > 1:
                raise AuthError(f"{name!r} is the last admin; make another user admin first")
            metadb.users.delete(con, name)  # and every session of theirs
            audit.record(con, by, "user removed", name, {"role": rec["role"]})


#: The hash of a random, forgotten password: unknown user names are verified against it, so that they
#: take as long as known ones (no user enumeration by timing).
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$tDfYMPIE0spgjeeZc/moQQ$IAkP6JjTnFyqkT+B5kry5jPFJM4wWlSy6JfxZv5dyxk"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def users_path(settings: Settings) -> Path:
    """Where the users file is: ``RNNVIS_USERS_FILE``, else ``<store>/users.json``."""
    return Path(settings.users_file) if settings.users_file else Path(settings.store) / "users.json"
