"""Job records and model-id claims in the metadata database (:mod:`analytics.metadb`, tables ``jobs`` and
``claims``): PostgreSQL when ``RNNVIS_DATABASE_URL`` is set, else SQLite in the store.

Why a database: a job record changes at every progress update and heartbeat, and the Jobs page lists the
newest jobs every second. A Parquet partition per job cost 6 ms a write and 0.16 s to list 500 jobs; a row
here costs well under a millisecond to update and a few to list a thousand (``bench/bench_jobs.py
--records``). The database's write lock (:meth:`analytics.metadb.Database.write`) also makes a model-id
claim one transaction (:mod:`workers.claims`).

Only SQL lives here; :mod:`workers.records` turns rows into :class:`~workers.records.JobRecord` and keeps
the Parquet archive that the store's ``jobs`` view reads. Every query takes a :class:`Database` (it runs
in a read transaction of its own) or the connection of a :func:`transaction`.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics import metadb
from analytics.metadb import tables
from analytics.schema import view

__all__ = ["COLUMNS", "TIMESTAMPS", "connect", "transaction", "get", "upsert", "delete", "newest", "with_status",
           "claim_holder", "set_claim", "drop_claim"]

#: Columns of the ``jobs`` table, in the order of the store's ``jobs`` view.
COLUMNS: tuple[str, ...] = tuple(c.name for c in view("jobs").columns)
#: Columns kept as integer microseconds since the epoch (UTC): sorted as time is, and read into
#: datetime64[us] columns without parsing.
TIMESTAMPS: tuple[str, ...] = tuple(c.name for c in view("jobs").columns if c.type == "TIMESTAMP")
_J, _C = tables.jobs, tables.claims
_ALL = [_J.c[c] for c in COLUMNS]
Where = metadb.Database | Connection


def connect(root: str | os.PathLike, imports: Sequence[tuple[str, Callable[[Connection], int]]] = ()
            ) -> metadb.Database:
    """The store's metadata database, with each ``(source, fn)`` of ``imports`` run once (older records)."""
    db = metadb.for_store(root)
    for source, fn in imports:
        db.import_once(source, fn)
    return db


@contextlib.contextmanager
def transaction(db: metadb.Database) -> Iterator[Connection]:
    """A write transaction holding the database's write lock (so what is read inside stays true)."""
    with db.write() as con:
        yield con


def _run(where: Where, stmt) -> Sequence[sa.Row]:
    if isinstance(where, Connection):
        return where.execute(stmt).all()
    with where.read() as con:
        return con.execute(stmt).all()


def get(where: Where, job_id: str) -> dict[str, Any] | None:
    rows = list(_run(where, sa.select(*_ALL).where(_J.c.job_id == job_id)))
    return None if not rows else dict(zip(COLUMNS, rows[0]))


# The upserts as text: the same SQL on SQLite (3.24+) and PostgreSQL, and SQLAlchemy caches a text statement,
# where its ON CONFLICT constructs were compiled again at every call (3x the CPU of a progress update).
_UPSERT_JOB = sa.text(f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)}) "
                      f"ON CONFLICT (job_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in COLUMNS[1:])}")
_UPSERT_CLAIM = sa.text("INSERT INTO claims (model_id, job_id, claimed_at) VALUES (:model_id, :job_id, :claimed_at) "
                        "ON CONFLICT (model_id) DO UPDATE SET job_id = excluded.job_id, "
                        "claimed_at = excluded.claimed_at")


def upsert(con: Connection, row: dict[str, Any]) -> None:
    con.execute(_UPSERT_JOB, {c: row[c] for c in COLUMNS})


def delete(con: Connection, job_id: str) -> None:
    con.execute(_J.delete().where(_J.c.job_id == job_id))


def newest(where: Where, limit: int, job_id: str | None = None) -> list[Sequence[Any]]:
    """Rows (tuples in :data:`COLUMNS` order), newest first; one job's row when ``job_id`` is given."""
    if job_id is not None:
        return [tuple(r) for r in _run(where, sa.select(*_ALL).where(_J.c.job_id == job_id))]
    stmt = sa.select(*_ALL).order_by(_J.c.submitted_at.desc(), _J.c.job_id).limit(int(limit))
    return [tuple(r) for r in _run(where, stmt)]


def with_status(where: Where, statuses: Sequence[str]) -> list[tuple[str, str | None]]:
    """(job id, model id) of every job whose stored status is one of ``statuses``, oldest first."""
    stmt = (sa.select(_J.c.job_id, _J.c.model_id).where(_J.c.status.in_(list(statuses)))
            .order_by(_J.c.submitted_at, _J.c.job_id))
    return [tuple(r) for r in _run(where, stmt)]


def claim_holder(where: Where, model_id: str) -> tuple[str, float] | None:
    """(job id, when it claimed, as a Unix time) of ``model_id``'s claim, or None."""
    rows = list(_run(where, sa.select(_C.c.job_id, _C.c.claimed_at).where(_C.c.model_id == model_id)))
    return None if not rows else (rows[0][0], rows[0][1])


def set_claim(con: Connection, model_id: str, job_id: str, at: float) -> None:
    con.execute(_UPSERT_CLAIM, {"model_id": model_id, "job_id": job_id, "claimed_at": at})


def drop_claim(con: Connection, model_id: str, job_id: str | None = None) -> None:
    stmt = _C.delete().where(_C.c.model_id == model_id)
    con.execute(stmt if job_id is None else stmt.where(_C.c.job_id == job_id))
