"""Opening the metadata database: which one, its engine per process, its migrations, its write lock.

``RNNVIS_DATABASE_URL`` (``postgresql://user@host/db``) selects PostgreSQL, through psycopg 3; without it
each store keeps SQLite in ``<store>/.rnnvis.sqlite`` (no server: ``make demo`` and one-host installs).
Why SQLAlchemy Core and Alembic: [decisions/0005](../../docs/decisions/0005-metadata-database.md).

SQLite as before (:mod:`workers.jobdb` kept it so): WAL on a local file system, the rollback journal on a
network one (``RNNVIS_JOBS_JOURNAL`` overrides), a 30 s busy timeout. A write transaction
(:meth:`Database.write`) takes the database's write lock at its start: ``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL; so what it reads stays true until it commits (a model-id
claim, the last admin, the order of a job's archive). Reads (:meth:`Database.read`) take no lock.

The migrations (Alembic, ``migrations/versions``) run when a process first opens a database, inside a write
transaction, so of several processes starting at once one migrates and the others then see the tables.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from analytics.metadb import tables

__all__ = ["Database", "for_store", "open_url", "forget", "sqlite_path", "journal_mode", "URL_ENV", "SQLITE_NAME"]

URL_ENV = "RNNVIS_DATABASE_URL"
SQLITE_NAME = ".rnnvis.sqlite"
BUSY_TIMEOUT_S = 30.0
#: The key of PostgreSQL's advisory lock that serialises writers (like SQLite's one write lock).
_PG_WRITE_LOCK = 0x524E4E56  # "RNNV"
_MIGRATIONS = Path(__file__).with_name("migrations")
_lock = threading.Lock()
_open: dict[tuple[int, str], Database] = {}

# File systems whose processes may sit on different hosts: WAL's shared-memory index would not be shared
# between them, so there the database keeps SQLite's rollback journal, which needs only POSIX locks.
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "9p", "gpfs", "beegfs",
               "afs", "fuse")


def sqlite_path(root: str | os.PathLike) -> Path:
    """The embedded database of the store at ``root``."""
    return Path(root).expanduser().absolute() / SQLITE_NAME


def _fs_type(folder: Path) -> str:
    """The file-system type of the mount holding ``folder`` (from /proc/mounts; '' where unknown)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = str(folder) == mount or str(folder).startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        return ""
    return kind


def journal_mode(folder: Path) -> str:
    """``RNNVIS_JOBS_JOURNAL`` (``wal`` | ``delete``), or by default ``wal`` on a local file system and
    ``delete`` (the rollback journal) on a network one, where workers on other hosts share the store."""
    chosen = os.environ.get("RNNVIS_JOBS_JOURNAL", "auto").strip().lower()
    if chosen in ("wal", "delete"):
        return chosen
    if chosen != "auto":
        raise ValueError(f"RNNVIS_JOBS_JOURNAL={chosen!r}: use auto, wal or delete")
    kind = _fs_type(Path(folder).resolve())
    return "delete" if kind.split(".")[0] in _NETWORK_FS else "wal"


def _set_journal_mode(con: sqlite3.Connection, mode: str) -> None:
    """Switch the database to ``mode`` unless it is in it already (the mode is kept in the file).

    Several processes opening a new database at once all switch it: SQLite then answers "database is
    locked" at once to all but one, without waiting in its busy handler (waiting there could deadlock), so
    the call itself is tried again, until the usual busy timeout (seen in 10 of 200 six-process races,
    tests/workers/test_job_records.py)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != mode:
                con.execute(f"PRAGMA journal_mode={mode}")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(0.05, pause * 2)


def _sqlite_engine(path: Path) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # password hashes: owner only (its -wal/-shm too)
    mode = journal_mode(path.parent)
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S,
                                                                 "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con, _record):  # SQLAlchemy then issues BEGIN itself (below), never pysqlite
        dbapi_con.isolation_level = None
        _set_journal_mode(dbapi_con, mode)
        dbapi_con.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")
    return engine


def _pg_engine(url: str) -> Engine:
    url = sa.engine.make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Database:
    """One metadata database: :meth:`read` and :meth:`write` hand out connections inside a transaction."""

    def __init__(self, url: str, engine: Engine):
        self.url, self.engine = url, engine
        self.dialect = engine.dialect.name
        self._imported: set[str] = set()

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as con, con.begin():
            yield con

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction holding the database's write lock from its start; commits at the end, or rolls back."""
        with self.engine.connect().execution_options(write=True) as con, con.begin():
            if self.dialect == "postgresql":
                con.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
            yield con

    def import_once(self, source: str, fn: Callable[[Connection], int]) -> None:
        """Run ``fn(con)`` (which copies an older file's rows in, returning how many) once per database: the
        ``imported`` table remembers ``source``; a failed import rolls back and is tried at the next start."""
        if source in self._imported:
            return
        with self.write() as con:
            done = con.execute(sa.select(tables.imported.c.source).where(tables.imported.c.source == source))
            if done.first() is None:
                rows = fn(con)
                con.execute(tables.imported.insert().values(source=source, at=time.time(), rows=int(rows)))
        self._imported.add(source)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (Alembic), inside a write transaction."""
        from alembic import command
        from alembic.config import Config
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.write() as con:
            cfg.attributes["connection"] = con
            command.upgrade(cfg, "head")


def _make(url: str) -> Database:
    if url.startswith("sqlite:///"):
        engine = _sqlite_engine(Path(url.removeprefix("sqlite:///")))
    elif url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        engine = _pg_engine(url)
    else:
        raise ValueError(f"{URL_ENV}={url!r}: use postgresql://user:password@host:port/database "
                         "(or leave it unset for SQLite inside the store)")
    db = Database(url, engine)
    db.migrate()
    return db


def open_url(url: str) -> Database:
    """This process's :class:`Database` for ``url`` (made, and migrated, at the first call of the process)."""
    key = (os.getpid(), url)  # never use a pooled connection across fork: a child makes its own engine
    with _lock:
        db = _open.get(key)
        if db is None:
            db = _open[key] = _make(url)
    return db


def for_store(root: str | os.PathLike) -> Database:
    """The metadata database of the store at ``root``: ``RNNVIS_DATABASE_URL``, else SQLite in the store.

    A store folder deleted and made again gets a fresh SQLite database."""
    url = os.environ.get("RNNVIS_DATABASE_URL", "").strip()
    if url:
        return open_url(url)
    path = sqlite_path(root)
    key = f"sqlite:///{path}"
    db = _open.get((os.getpid(), key))
    if db is not None and not path.exists():
        with _lock:
            _open.pop((os.getpid(), key), None)
        db.engine.dispose()
    return open_url(key)


_T = TypeVar("_T")


def run(where: str | os.PathLike | Database | Connection, fn: Callable[[Connection], _T], *, write: bool) -> _T:
    """``fn(con)`` on the caller's connection (its change then commits with the caller's transaction), or in
    a read or write transaction of its own on a :class:`Database` or the database of the store ``where``."""
    if isinstance(where, Connection):
        return fn(where)
    db = where if isinstance(where, Database) else for_store(where)
    with (db.write() if write else db.read()) as con:
        return fn(con)


def forget(db: Database) -> None:
    """Close ``db``'s connections and drop it from this process's cache (a test's throwaway database)."""
    with _lock:
        for k in [k for k, v in _open.items() if v is db]:
            del _open[k]
    db.engine.dispose()

