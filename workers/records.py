"""Job records, their status as readers show it, and the cancel flag.

Where a record lives: the live record is one row of the metadata database
(:mod:`workers.jobdb`; PostgreSQL or SQLite in the store folder), written at every status
change, at most once a second for progress, and at every heartbeat; reads,
lists and updates take a millisecond or less. The store's ``jobs`` view
(what SQL sees) reads a Parquet *archive*, one partition per job, written
in the same database transaction as every change of status, stage, attempt,
worker or error (so at submit, at each stage's start and hand-over and at
the end), never for progress or heartbeats: in SQL a running job shows its
status and stage, with the progress and heartbeat of its last status
change. A store made before the job database has its Parquet records
imported when the database is first opened.

``params`` holds what was submitted and ``detail`` (JSON) the latest
progress, the per-epoch training curve and the result.

Status: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``
(``queued`` again between stages and before a retry). Readers also show
``cancelling`` (cancel asked, the worker has not stopped yet) and ``lost``
(running, but no heartbeat for ``stale_after_s``: its worker died; the
broker hands the task to another worker, which resumes it).

Stages: ``queued`` -> ``train`` | ``import`` -> ``analyze`` -> ``publish``
-> ``done``. The order readers can rely on: the analysis writes stage
``publish`` before its model partition appears in the store, and marks the
job ``done`` only after it has appeared. So a reader that looks at the
store *first* and at the record *second* sees the model only when the
record says ``publish`` or ``done``, and a record that says ``done`` means
the model is there.

Cancel is a flag file ``<store>/.cancel/<job_id>`` that the worker polls
between training steps, so it works with any broker and across machines
that share the store.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from analytics import store
from analytics.metadb import Database, legacy
from workers import jobdb
from workers.errors import JobError, UnknownJobError, invalid_job_id

log = logging.getLogger(__name__)

__all__ = ["ACTIVE", "TERMINAL", "CANCEL_DIR", "JobRecord", "utcnow", "new_job_id", "job_db", "write_job",
           "read_job", "delete_job", "cancel_path", "request_cancel", "cancel_requested", "display_status",
           "list_jobs"]

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
CANCEL_DIR = ".cancel"
#: A change of any of these is a status change: written to the Parquet archive as well.
ARCHIVED_ON = ("status", "stage", "attempts", "worker", "error")
_EPOCH, _US = dt.datetime(1970, 1, 1), dt.timedelta(microseconds=1)
_NAT = np.iinfo(np.int64).min  # numpy's NaT as an int64


def utcnow() -> dt.datetime:
    """Naive UTC, as the store keeps timestamps."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _ts(value: Any) -> dt.datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, int):  # the job database's microseconds since the epoch
        return _EPOCH + dt.timedelta(microseconds=value)
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    return value


def _us(value: dt.datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // _US


@dataclass
class JobRecord:
    """One row of the ``jobs`` view; ``params`` and ``detail`` are dicts here, JSON in the store."""

    job_id: str
    kind: str
    model_id: str | None
    status: str = "queued"
    progress: float = 0.0
    submitted_by: str = ""
    submitted_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    worker: str | None = None
    attempts: int = 0
    stage: str = "queued"

    def row(self) -> dict[str, Any]:
        """The row as the Parquet archive keeps it (datetimes, JSON text)."""
        d = dataclasses.asdict(self)
        d["params"] = json.dumps(self.params, default=str)
        d["detail"] = json.dumps(self.detail, default=str)
        return d

    def sql_row(self) -> dict[str, Any]:
        """The row as the job database keeps it (timestamps as microseconds since the epoch)."""
        d = self.row()
        for c in jobdb.TIMESTAMPS:
            d[c] = _us(d[c])
        return d

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRecord:
        def js(v: Any) -> dict:
            if not v or (isinstance(v, float) and math.isnan(v)):
                return {}
            try:
                return json.loads(v)
            except (TypeError, ValueError):
                return {}

        def opt(v: Any) -> Any:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return cls(job_id=row["job_id"], kind=row["kind"], model_id=opt(row.get("model_id")),
                   status=row["status"], progress=float(opt(row.get("progress")) or 0.0),
                   submitted_by=opt(row.get("submitted_by")) or "",
                   submitted_at=_ts(row.get("submitted_at")) or utcnow(),
                   finished_at=_ts(row.get("finished_at")), error=opt(row.get("error")),
                   params=js(row.get("params")), detail=js(row.get("detail")),
                   started_at=_ts(row.get("started_at")), heartbeat_at=_ts(row.get("heartbeat_at")),
                   worker=opt(row.get("worker")), attempts=int(opt(row.get("attempts")) or 0),
                   stage=opt(row.get("stage")) or "queued")


def job_db(root: str | os.PathLike) -> Database:
    """The store's metadata database, holding the job records; on its first open the records of older
    versions move in: ``.jobs.sqlite`` (records and model-id claims), then Parquet-only records and
    ``.claims/`` files of stores from before it."""
    return jobdb.connect(root, imports=[(".jobs.sqlite", lambda con: legacy.import_job_sqlite(
                                             con, Path(root).expanduser().absolute() / ".jobs.sqlite")),
                                        ("jobs archive", lambda con: _import_parquet_records(con, root))])


def _import_parquet_records(con: Connection, root: str | os.PathLike) -> int:
    """A store from before the job database: its records (Parquet partitions) and model-id claims (files
    ``.claims/<model_id>`` holding the job id) move into the database, once; records it has are kept."""
    import pyarrow.parquet as pq
    n = 0
    for job_id in store.list_partitions(root, "jobs"):
        path = store.table_file(root, "jobs", job_id, "jobs")
        for row in pq.read_table(path).to_pylist() if path is not None else []:
            if jobdb.get(con, job_id) is None:
                jobdb.upsert(con, JobRecord.from_row(row).sql_row())
                n += 1
    claims_dir = Path(root).expanduser().absolute() / ".claims"
    for f in claims_dir.iterdir() if claims_dir.is_dir() else []:
        if not f.name.startswith(".") and f.is_file() and jobdb.claim_holder(con, f.name) is None:
            jobdb.set_claim(con, f.name, f.read_text().strip(), f.stat().st_mtime)
    if n:
        log.info("moved %d job records of %s into its job database", n, root)
    return n


def new_job_id(root: str | os.PathLike) -> str:
    """A short unique id, valid as a store id: ``j`` + 8 hex digits."""
    db = job_db(root)
    for _ in range(100):
        job_id = "j" + secrets.token_hex(4)
        if jobdb.get(db, job_id) is None and not store.partition_path(root, "jobs", job_id).exists():
            return job_id
    raise JobError("could not find a free job id")  # pragma: no cover


def write_job(root: str | os.PathLike, rec: JobRecord) -> None:
    """Write ``rec``; on a status change (:data:`ARCHIVED_ON`) also its archive partition, under the same lock.

    Holding the database's write lock while the archive is written keeps the
    archive in the order of the changes: of two writers, the later one's row
    is the one archived."""
    row = rec.sql_row()
    with jobdb.transaction(job_db(root)) as con:
        before = jobdb.get(con, rec.job_id)
        jobdb.upsert(con, row)
        if before is None or any(before[c] != row[c] for c in ARCHIVED_ON):
            _archive(root, rec)


def _archive(root: str | os.PathLike, rec: JobRecord) -> None:
    """The job's partition for the ``jobs`` view. Not fsynced: the database is the record, this a copy."""
    try:
        with store.write_partition(root, "jobs", rec.job_id, durable=False) as w:
            w.write("jobs", pd.DataFrame([rec.row()]))
    except OSError:  # the live record is written; the view catches up at the next status change
        log.warning("job %s: could not write its archive partition", rec.job_id, exc_info=True)


def read_job(root: str | os.PathLike, job_id: str) -> JobRecord:
    """The current record of ``job_id``; UnknownJobError if there is none."""
    _check_job_id(job_id)
    row = jobdb.get(job_db(root), job_id)
    if row is None:
        raise UnknownJobError(job_id)
    return JobRecord.from_row(row)


def jobs_with_status(root: str | os.PathLike, *statuses: str) -> list[tuple[str, str | None]]:
    """(job id, model id) of the jobs whose stored status is one of ``statuses``, oldest first."""
    return jobdb.with_status(job_db(root), statuses)


def delete_job(root: str | os.PathLike, job_id: str) -> None:
    """Remove the record and its archive (no error if there is none)."""
    _check_job_id(job_id)
    with jobdb.transaction(job_db(root)) as con:
        jobdb.delete(con, job_id)
        store.delete_partition(root, "jobs", job_id, missing_ok=True)


def _check_job_id(job_id: str) -> None:
    try:
        store.validate_id(job_id, "job_id")
    except (TypeError, ValueError):
        raise invalid_job_id(job_id) from None


def cancel_path(root: str | os.PathLike, job_id: str) -> Path:
    _check_job_id(job_id)
    return Path(root) / CANCEL_DIR / job_id


def request_cancel(root: str | os.PathLike, job_id: str, by: str = "") -> None:
    """Raise the cancel flag that the worker polls (works for any broker, across machines)."""
    path = cancel_path(root, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{job_id}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps({"by": by, "at": utcnow().isoformat()}))
    os.replace(tmp, path)


def cancel_requested(root: str | os.PathLike, job_id: str) -> bool:
    return cancel_path(root, job_id).exists()


def display_status(status: str, heartbeat_at: Any, cancelling: bool, *, now: dt.datetime | None = None,
                   stale_after_s: float = 60.0) -> str:
    """What a reader shows: the stored status, or ``cancelling`` / ``lost``."""
    if status in ACTIVE and cancelling:
        return "cancelling"
    hb = _ts(heartbeat_at)
    if status == "running" and hb is not None and ((now or utcnow()) - hb).total_seconds() > stale_after_s:
        return "lost"
    return status


def list_jobs(root: str | os.PathLike, *, limit: int = 200, stale_after_s: float = 60.0,
              job_id: str | None = None) -> pd.DataFrame:
    """Jobs, newest first, as rows of the ``jobs`` view with ``display_status`` and ``duration_s`` (seconds
    since the start, NaN while it waits) added; from the job database, so with live progress and heartbeats.

    The Jobs page calls this every second: columns are built straight from the database's tuples and the
    derived columns are vectorised (a per-row loop over pandas timestamps took most of the time)."""
    if job_id is not None:
        _check_job_id(job_id)
    rows = jobdb.newest(job_db(root), limit, job_id)
    df = pd.DataFrame(rows, columns=list(jobdb.COLUMNS), dtype=object)  # one object block: no per-column inference
    now_ = np.datetime64(utcnow(), "us")
    ts = {c: _datetimes(df[c].to_numpy()) for c in jobdb.TIMESTAMPS}
    status = df["status"].to_numpy()
    flagged = np.isin(df["job_id"].to_numpy(), _cancel_flags(root))
    silent = (now_ - ts["heartbeat_at"]) > np.timedelta64(int(stale_after_s * 1e6), "us")  # NaT compares False
    display = np.where((status == "running") & silent, "lost", status)
    finished = ts["finished_at"]
    extra = {**ts, "progress": df["progress"].to_numpy(np.float64, na_value=np.nan),
             "attempts": df["attempts"].fillna(0).to_numpy(np.int64),
             "display_status": np.where(np.isin(status, ACTIVE) & flagged, "cancelling", display).astype(object),
             "duration_s": (np.where(np.isnat(finished), now_, finished) - ts["started_at"]) / np.timedelta64(1, "s")}
    df = df.assign(**extra)
    return df


def _datetimes(us: np.ndarray) -> np.ndarray:
    """Microseconds since the epoch (None for NULL) as datetime64[us] (NaT); exact in float64 until 2255."""
    f = np.array(us.tolist(), dtype=np.float64)
    return np.where(np.isnan(f), _NAT, f).astype(np.int64).view("datetime64[us]")


def _cancel_flags(root: str | os.PathLike) -> list[str]:
    try:
        return os.listdir(Path(root) / CANCEL_DIR)
    except FileNotFoundError:
        return []
