"""The job database: live job records and model-id claims in SQLite, ``<store>/.jobs.sqlite``.

Why SQLite: a job record changes at every progress update and heartbeat, and
the Jobs page lists the newest jobs every second. A Parquet partition per
job cost 6 ms a write and 0.16 s to list 500 jobs; a row here costs well
under a millisecond to update and a few to list a thousand
(``bench/bench_jobs.py --records``). SQLite's write lock also makes a
model-id claim one transaction (:mod:`workers.claims`).

On a local file system the database runs in WAL mode (readers never wait
for the writer, and a commit needs no fsync: a power cut may lose the last
updates, never corrupt the file). WAL needs every process that opens the
database on one host (its index is shared memory), so on a network file
system (NFS, CephFS, SMB, FUSE mounts: workers on other machines sharing
the store) it keeps SQLite's rollback journal, which needs only POSIX
locks (:func:`journal_mode`; ``RNNVIS_JOBS_JOURNAL`` overrides). Either way
a 30 s busy timeout makes concurrent writers (the web app, workers, the
CLI) queue for the write lock instead of failing.

Only SQL lives here; :mod:`workers.records` turns rows into
:class:`~workers.records.JobRecord` and keeps the Parquet archive that the
store's ``jobs`` view reads.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from analytics.schema import view

__all__ = ["DB_NAME", "COLUMNS", "TIMESTAMPS", "db_path", "connect", "transaction", "get", "upsert", "delete",
           "newest", "with_status", "claim_holder", "set_claim", "drop_claim"]

DB_NAME = ".jobs.sqlite"
#: Columns of the ``jobs`` table, in the order of the store's ``jobs`` view.
COLUMNS: tuple[str, ...] = tuple(c.name for c in view("jobs").columns)
#: Columns kept as integer microseconds since the epoch (UTC): sorted as time is, and read into
#: datetime64[us] columns without parsing.
TIMESTAMPS: tuple[str, ...] = tuple(c.name for c in view("jobs").columns if c.type == "TIMESTAMP")
BUSY_TIMEOUT_S = 30.0
_CACHE_PER_THREAD = 8          # open databases kept per thread (tests open many stores)
_VERSION = 1

_SQL_TYPES = {"VARCHAR": "TEXT", "DOUBLE": "REAL", "INTEGER": "INTEGER", "TIMESTAMP": "INTEGER"}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    {", ".join(f"{c.name} {_SQL_TYPES[c.type]}" + (" PRIMARY KEY" if c.name == "job_id" else "")
               for c in view("jobs").columns)}
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_at DESC, job_id);
CREATE TABLE IF NOT EXISTS claims (
    model_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
"""
# An upsert, not INSERT OR REPLACE (a delete and an insert, and a new rowid at every update).
_UPSERT = (f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
           f"ON CONFLICT (job_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])}")
_local = threading.local()
_inherited: list[OrderedDict] = []


def db_path(root: str | os.PathLike) -> Path:
    return Path(root).expanduser().absolute() / DB_NAME


# File systems whose processes may sit on different hosts: WAL's shared-memory index would not be shared
# between them, so there the database keeps SQLite's rollback journal, which needs only POSIX locks.
_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "lustre", "9p", "gpfs", "beegfs",
               "afs", "fuse")


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
    kind = _fs_type(folder.resolve())
    return "delete" if kind.split(".")[0] in _NETWORK_FS else "wal"


def _set_journal_mode(con: sqlite3.Connection, mode: str) -> None:
    """Switch the database to ``mode`` unless it is in it already (the mode is kept in the file).

    Several processes opening a new database at once all switch it: SQLite then answers "database is
    locked" at once to all but one, without waiting in its busy handler (waiting there could deadlock:
    each holds the shared lock the other's exclusive lock needs), so the call itself is tried again, until
    the usual busy timeout (seen in 10 of 200 six-process races, tests/workers/test_job_records.py).
    """
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


def _open(path: Path, migrate) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    _set_journal_mode(con, journal_mode(path.parent))
    con.execute("PRAGMA synchronous=NORMAL")
    if con.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
        with transaction(con):  # one process creates (and fills) the tables; the others wait, then see them
            if con.execute("PRAGMA user_version").fetchone()[0] != _VERSION:
                for statement in filter(str.strip, _SCHEMA.split(";")):  # (executescript would commit)
                    con.execute(statement)
                if migrate is not None:
                    migrate(con)
                con.execute(f"PRAGMA user_version={_VERSION}")
    have = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
    missing = [c for c in view("jobs").columns if c.name not in have]
    if missing:  # columns appended to the jobs view since this database was made
        with transaction(con):
            have = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
            for c in missing:
                if c.name not in have:
                    con.execute(f"ALTER TABLE jobs ADD COLUMN {c.name} {_SQL_TYPES[c.type]}")
    return con


def connect(root: str | os.PathLike, migrate=None) -> sqlite3.Connection:
    """This thread's connection to the store's job database (opened once per thread and process).

    ``migrate(con)`` runs once, inside the transaction that creates the tables (to import older records).
    A store folder deleted and made again gets a fresh connection."""
    path = db_path(root)
    cache: OrderedDict | None = getattr(_local, "cache", None)
    if cache is None or getattr(_local, "pid", None) != os.getpid():  # never use a connection across fork
        if cache:  # nor close it there (closing may checkpoint the parent's WAL): keep it, unused
            _inherited.append(cache)
        cache = _local.cache = OrderedDict()
        _local.pid = os.getpid()
    try:
        ino = path.stat().st_ino
    except FileNotFoundError:
        ino = None
    hit = cache.get(path)
    if hit is not None and hit[1] == ino:
        cache.move_to_end(path)
        return hit[0]
    if hit is not None:
        hit[0].close()
    con = _open(path, migrate)
    cache[path] = (con, path.stat().st_ino)
    while len(cache) > _CACHE_PER_THREAD:
        cache.popitem(last=False)[1][0].close()
    return con


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (take the write lock now, so what is read inside stays true) ... ``COMMIT``."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def get(con: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    cur = con.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip(COLUMNS, row))


def upsert(con: sqlite3.Connection, row: dict[str, Any]) -> None:
    con.execute(_UPSERT, [row[c] for c in COLUMNS])


def delete(con: sqlite3.Connection, job_id: str) -> None:
    con.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))


def newest(con: sqlite3.Connection, limit: int, job_id: str | None = None) -> list[Sequence[Any]]:
    """Rows (tuples in :data:`COLUMNS` order), newest first; one job's row when ``job_id`` is given."""
    cols = ", ".join(COLUMNS)
    if job_id is not None:
        return con.execute(f"SELECT {cols} FROM jobs WHERE job_id = ?", (job_id,)).fetchall()
    return con.execute(f"SELECT {cols} FROM jobs ORDER BY submitted_at DESC, job_id LIMIT ?",
                       (int(limit),)).fetchall()


def with_status(con: sqlite3.Connection, statuses: Sequence[str]) -> list[tuple[str, str | None]]:
    """(job id, model id) of every job whose stored status is one of ``statuses``, oldest first."""
    marks = ", ".join("?" for _ in statuses)
    return con.execute(f"SELECT job_id, model_id FROM jobs WHERE status IN ({marks}) ORDER BY submitted_at, job_id",
                       tuple(statuses)).fetchall()


def claim_holder(con: sqlite3.Connection, model_id: str) -> tuple[str, float] | None:
    """(job id, when it claimed, as a Unix time) of ``model_id``'s claim, or None."""
    row = con.execute("SELECT job_id, claimed_at FROM claims WHERE model_id = ?", (model_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def set_claim(con: sqlite3.Connection, model_id: str, job_id: str, at: float) -> None:
    con.execute("INSERT OR REPLACE INTO claims (model_id, job_id, claimed_at) VALUES (?, ?, ?)",
                (model_id, job_id, at))


def drop_claim(con: sqlite3.Connection, model_id: str, job_id: str | None = None) -> None:
    if job_id is None:
        con.execute("DELETE FROM claims WHERE model_id = ?", (model_id,))
    else:
        con.execute("DELETE FROM claims WHERE model_id = ? AND job_id = ?", (model_id, job_id))
