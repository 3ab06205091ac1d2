"""Job records in the store, their status as readers show it, and the cancel flag.

A job is one store partition of kind ``jobs`` (one row of the ``jobs`` view),
rewritten atomically at every status change, at most once a second for
progress, and at every heartbeat. ``params`` holds what was submitted and
``detail`` (JSON) the latest progress, the per-epoch training curve and the
result.

Status: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``
(``queued`` again between stages and before a retry). Readers also show
``cancelling`` (cancel asked, the worker has not stopped yet) and ``lost``
(running, but no heartbeat for ``stale_after_s``: its worker died; the
broker hands the task to another worker, which resumes it).

Cancel is a flag file ``<store>/.cancel/<job_id>`` that the worker polls
between training steps, so it works with any broker and across machines
that share the store.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from analytics import store
from workers.errors import JobError, UnknownJobError, invalid_job_id

__all__ = ["ACTIVE", "TERMINAL", "CANCEL_DIR", "JobRecord", "utcnow", "new_job_id", "write_job", "read_job",
           "delete_job", "cancel_path", "request_cancel", "cancel_requested", "display_status", "list_jobs"]

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
CANCEL_DIR = ".cancel"


def utcnow() -> dt.datetime:
    """Naive UTC, as the store keeps timestamps."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _ts(value: Any) -> dt.datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    return value


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
        d = dataclasses.asdict(self)
        d["params"] = json.dumps(self.params, default=str)
        d["detail"] = json.dumps(self.detail, default=str)
        return d

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "JobRecord":
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
                   submitted_by=opt(row.get("submitted_by")) or "", submitted_at=_ts(row.get("submitted_at")) or utcnow(),
                   finished_at=_ts(row.get("finished_at")), error=opt(row.get("error")),
                   params=js(row.get("params")), detail=js(row.get("detail")),
                   started_at=_ts(row.get("started_at")), heartbeat_at=_ts(row.get("heartbeat_at")),
                   worker=opt(row.get("worker")), attempts=int(opt(row.get("attempts")) or 0),
                   stage=opt(row.get("stage")) or "queued")


def new_job_id(root: str | os.PathLike) -> str:
    """A short unique id, valid as a store id: ``j`` + 8 hex digits."""
    for _ in range(100):
        job_id = "j" + secrets.token_hex(4)
        if not store.partition_path(root, "jobs", job_id).exists():
            return job_id
    raise JobError("could not find a free job id")  # pragma: no cover


def write_job(root: str | os.PathLike, rec: JobRecord) -> None:
    """Replace the job's partition with ``rec`` (atomic)."""
    with store.write_partition(root, "jobs", rec.job_id) as w:
        w.write("jobs", pd.DataFrame([rec.row()]))


def read_job(root: str | os.PathLike, job_id: str) -> JobRecord:
    """The current record of ``job_id`` (reads its one Parquet file; no DuckDB)."""
    _check_job_id(job_id)
    for attempt in range(5):
        path = store.table_file(root, "jobs", job_id, "jobs")
        if path is None:
            if attempt < 4 and store.partition_path(root, "jobs", job_id).parent.exists():
                time.sleep(0.02)  # caught between the two renames of a replacement
                continue
            raise UnknownJobError(job_id)
        try:
            rows = pq.read_table(path).to_pylist()
        except (FileNotFoundError, OSError):  # replaced while we read it
            time.sleep(0.02)
            continue
        if rows:
            return JobRecord.from_row(rows[0])
    raise UnknownJobError(job_id)


def delete_job(root: str | os.PathLike, job_id: str) -> None:
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
    """Jobs, newest first, from the ``jobs`` view, with ``display_status`` and ``duration_s`` added."""
    con = store.connect(root)
    try:
        if job_id is None:
            df = store.query(con, "SELECT * FROM jobs ORDER BY submitted_at DESC, job_id LIMIT ?", [int(limit)])
        else:
            df = store.query(con, "SELECT * FROM jobs WHERE job_id = ?", [job_id])
    finally:
        con.close()
    now_ = utcnow()
    cancel_dir = Path(root) / CANCEL_DIR
    flags = set(os.listdir(cancel_dir)) if cancel_dir.is_dir() else set()
    df["display_status"] = [display_status(s, hb, j in flags, now=now_, stale_after_s=stale_after_s)
                            for s, hb, j in zip(df["status"], df["heartbeat_at"], df["job_id"])]
    durations = []
    for start, end in zip(df["started_at"], df["finished_at"]):
        start, end = _ts(start), _ts(end)
        durations.append(None if start is None else ((end or now_) - start).total_seconds())
    df["duration_s"] = durations
    return df
