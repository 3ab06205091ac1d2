"""The worker side of a job: its tracker (status, progress, heartbeat, cancel) and who may run a stage.

A stage (:mod:`workers.stages`) first *claims* the job (:func:`claim`): it
skips a job that is finished, cancelled or at another stage, and takes over
one whose worker was lost (its process is gone, or its heartbeat is older
than ``stale_after_s``). While it runs, a :class:`JobTracker` writes the
record: status changes at once, progress at most once a second, and a
heartbeat every ``heartbeat_s``.

``publish`` is the last part of the ``analyze`` stage (written before the
model partition appears, see :mod:`workers.records`): a worker lost while
publishing is taken over by the analyze task's redelivery, which runs the
analysis again (the partition is replaced whole, or was never there).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analytics.metadb import audit
from analytics.processes import process_alive
from models.checkpoint import checkpoint_file
from workers.claims import release_model_id
from workers.errors import JobFailed, TransientJobError, UnknownJobError
from workers.records import TERMINAL, cancel_path, cancel_requested, read_job, utcnow, write_job

log = logging.getLogger(__name__)

__all__ = ["StageOutcome", "DONE", "CANCELLED", "SKIPPED", "JobTracker", "StageContext", "worker_name",
           "owner_alive", "claim", "fail"]

MIN_WRITE_INTERVAL_S = 1.0
#: Parts of a stage that have a stage name of their own, for readers: which task runs them.
PART_OF = {"publish": "analyze"}
_HOST = socket.gethostname()


def _error_text(exc: BaseException, time_limit_s: float | None = None) -> str:
    name = type(exc).__name__
    if name == "SoftTimeLimitExceeded":
        return f"time limit exceeded ({time_limit_s:.0f} s); raise RNNVIS_TRAIN_TIME_LIMIT or train less" \
            if time_limit_s else "time limit exceeded"
    msg = str(exc).strip()
    if "out of memory" in msg.lower():
        msg += " (try a smaller batch size, hidden size or vocabulary)"
    text = f"{name}: {msg}" if msg else name
    return text if len(text) <= 2000 else text[:1997] + "..."


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.errno in (
        errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EBUSY, errno.ECONNRESET)


def worker_name(node: str | None = None) -> str:
    """``<node or host>/<pid>``: who runs a job (the pid tells a dead process from a live one)."""
    return f"{node or _HOST}/{os.getpid()}"


def owner_alive(worker: str | None) -> bool | None:
    """True/False when ``worker`` ran on this host (by its pid), None when it ran elsewhere."""
    if not worker or "/" not in worker:
        return None
    node, _, pid = worker.rpartition("/")
    host = node.rpartition("@")[2]
    if host != _HOST or not pid.isdigit():
        return None
    return process_alive(int(pid))


class StageOutcome(str):
    """What a stage did: ``done`` (continue with the next stage), ``cancelled``, ``skipped`` or ``failed``."""


DONE, CANCELLED, SKIPPED = StageOutcome("done"), StageOutcome("cancelled"), StageOutcome("skipped")


class JobTracker:
    """The record of a job being run, kept in memory and written to the store.

    Status changes are written at once, progress at most every
    ``min_interval_s``, and a heartbeat thread rewrites the record every
    ``heartbeat_s`` (and calls ``on_heartbeat``, e.g. to renew the broker's
    claim on the task) so that readers can tell a live job from a lost one.
    """

    def __init__(self, root: str | os.PathLike, job_id: str, *, heartbeat_s: float = 10.0,
                 min_interval_s: float = MIN_WRITE_INTERVAL_S, on_heartbeat: Callable[[], None] | None = None):
        self.root = root
        self.rec = read_job(root, job_id)
        self.heartbeat_s = heartbeat_s
        self.min_interval_s = min_interval_s
        self.on_heartbeat = on_heartbeat
        self._lock = threading.RLock()
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cancel_check = 0.0
        self._cancelled = False

    # -- writing
    def save(self, force: bool = True) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_write < self.min_interval_s:
                return
            if self.rec.status == "running":
                self.rec.heartbeat_at = utcnow()
            write_job(self.root, self.rec)
            self._last_write = now

    def begin(self, stage: str, worker: str) -> None:
        with self._lock:
            r = self.rec
            if PART_OF.get(r.stage, r.stage) != stage:
                r.attempts = 0
            r.status, r.stage, r.worker, r.error = "running", stage, worker, None
            r.attempts += 1
            r.started_at = r.started_at or utcnow()
            r.detail.setdefault("stages", {})[stage] = {"started_at": utcnow().isoformat(), "attempt": r.attempts,
                                                        "worker": worker}
            self.save()

    def publishing(self) -> None:
        """The analysis is about to make its model partition appear: say so first (written at once)."""
        with self._lock:
            self.rec.stage = "publish"
            self.rec.detail.setdefault("stages", {})["publish"] = {"started_at": utcnow().isoformat()}
            self.save()

    def progress(self, fraction: float | None = None, latest: Mapping[str, Any] | None = None,
                 force: bool = False) -> None:
        with self._lock:
            if fraction is not None:
                self.rec.progress = max(0.0, min(1.0, float(fraction)))
            if latest is not None:
                self.rec.detail["latest"] = dict(latest)
            self.save(force)

    def update_detail(self, **items: Any) -> None:
        """Set keys of ``detail`` (under the lock the heartbeat thread writes with); written at the next save."""
        with self._lock:
            self.rec.detail.update(items)

    def add_curve_point(self, point: Mapping[str, Any], fraction: float | None = None,
                        latest: Mapping[str, Any] | None = None) -> None:
        """End of an epoch: a point of the training curve (and the progress), written at once."""
        with self._lock:
            if fraction is not None:
                self.rec.progress = max(0.0, min(1.0, float(fraction)))
            if latest is not None:
                self.rec.detail["latest"] = dict(latest)
            curve = [p for p in self.rec.detail.setdefault("curve", []) if p.get("epoch") != point.get("epoch")]
            curve.append(dict(point))
            self.rec.detail["curve"] = curve
            self.save()

    def finish(self, status: str, *, error: str | None = None, result: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            r = self.rec
            r.status, r.error, r.finished_at = status, error, utcnow()
            if status == "done":
                r.progress, r.stage = 1.0, "done"
            if result is not None:
                r.detail["result"] = dict(result)
            self.save()
        with contextlib.suppress(OSError):
            cancel_path(self.root, r.job_id).unlink(missing_ok=True)  # the flag has done its work
        if status == "failed":
            audit.record(self.root, r.worker or "worker", "job failed", r.job_id,
                         {"kind": r.kind, "model_id": r.model_id, "submitted_by": r.submitted_by, "error": error})
        elif status == "done" and r.kind == "import":
            audit.record(self.root, r.submitted_by, "model imported", r.model_id, {"job_id": r.job_id})
        if status in ("failed", "cancelled") and r.kind in ("train", "import"):
            try:
                if r.kind == "import":  # an import that did not finish leaves no checkpoint behind
                    checkpoint_file(self.root, r.model_id).unlink(missing_ok=True)
                release_model_id(self.root, r.model_id, r.job_id)  # the id is free again
            except OSError:
                log.warning("job %s: could not release the claim on %s", r.job_id, r.model_id, exc_info=True)

    def hand_over(self, stage: str, progress: float) -> None:
        """This stage is done; the job waits in the queue of the next one."""
        with self._lock:
            r = self.rec
            r.status, r.stage, r.attempts, r.progress = "queued", stage, 0, progress
            r.detail.setdefault("stages", {}).setdefault(r.stage, {})
            self.save()

    def requeue(self, reason: str) -> None:
        with self._lock:
            self.rec.status = "queued"
            self.rec.detail["retry"] = {"reason": reason, "at": utcnow().isoformat()}
            self.save()

    # -- cancel
    def should_stop(self) -> bool:
        """Polled by the training / analysis loops; checks the cancel flag at most every 0.2 s."""
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= 0.2:
            self._last_cancel_check = now
            self._cancelled = cancel_requested(self.root, self.rec.job_id)
        return self._cancelled

    # -- heartbeat
    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.save()
            except Exception:  # noqa: BLE001 - a missed heartbeat must not kill the job
                log.warning("job %s: heartbeat write failed", self.rec.job_id, exc_info=True)
            if self.on_heartbeat is not None:
                try:
                    self.on_heartbeat()
                except Exception:  # noqa: BLE001
                    log.warning("job %s: heartbeat hook failed", self.rec.job_id, exc_info=True)

    def __enter__(self) -> JobTracker:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.rec.job_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass
class StageContext:
    """What a worker passes to a stage."""

    root: str | os.PathLike
    job_id: str
    worker: str
    device: Any = None                       # torch device or None (automatic)
    heartbeat_s: float = 10.0
    stale_after_s: float = 60.0
    max_attempts: int = 3
    time_limit_s: float | None = None
    on_heartbeat: Callable[[], None] | None = None
    wait_for_owner_s: float | None = None    # default: stale_after_s + heartbeat_s


def claim(ctx: StageContext, stage: str) -> tuple[JobTracker | None, StageOutcome | None]:
    """Decide whether this delivery runs ``stage``; returns (tracker, None) to run or (None, outcome)."""
    try:
        tracker = JobTracker(ctx.root, ctx.job_id, heartbeat_s=ctx.heartbeat_s, on_heartbeat=ctx.on_heartbeat)
    except UnknownJobError:
        log.warning("job %s is not in the store at %s (deleted, or this worker uses another store); "
                    "dropping its message", ctx.job_id, ctx.root)
        return None, SKIPPED
    rec = tracker.rec
    at = PART_OF.get(rec.stage, rec.stage)
    if rec.status in TERMINAL:
        log.info("job %s is already %s; nothing to do", rec.job_id, rec.status)
        return None, SKIPPED
    if cancel_requested(ctx.root, ctx.job_id):
        tracker.finish("cancelled")
        return None, CANCELLED
    if at not in (stage, "queued"):
        log.warning("job %s is at stage %s, not %s; ignoring this delivery", rec.job_id, rec.stage, stage)
        return None, SKIPPED
    # A delivery of a job that another worker is (maybe) still running: a redelivery after
    # that worker was lost, or a duplicate. Wait until its owner is provably dead or silent.
    if rec.status == "running" and rec.worker and rec.worker != ctx.worker:
        deadline = time.monotonic() + (ctx.wait_for_owner_s if ctx.wait_for_owner_s is not None
                                       else ctx.stale_after_s + ctx.heartbeat_s)
        while True:
            alive = owner_alive(rec.worker)
            if alive is False:
                break
            hb = rec.heartbeat_at
            if hb is None or (utcnow() - hb).total_seconds() > ctx.stale_after_s:
                break
            if time.monotonic() > deadline:
                log.warning("job %s is still running on %s; dropping this duplicate delivery", rec.job_id, rec.worker)
                return None, SKIPPED
            time.sleep(min(1.0, ctx.heartbeat_s / 2))
            tracker = JobTracker(ctx.root, ctx.job_id, heartbeat_s=ctx.heartbeat_s, on_heartbeat=ctx.on_heartbeat)
            rec = tracker.rec
            if rec.status != "running" or PART_OF.get(rec.stage, rec.stage) != stage:
                return None, SKIPPED
        log.warning("job %s: taking over from lost worker %s", rec.job_id, rec.worker)
        rec.detail.setdefault("takeovers", []).append({"from": rec.worker, "to": ctx.worker,
                                                       "at": utcnow().isoformat()})
    if rec.attempts >= ctx.max_attempts and PART_OF.get(rec.stage, rec.stage) == stage:
        tracker.finish("failed", error=f"gave up after {rec.attempts} attempts of the {stage} stage: the "
                                       "worker running it was lost each time (killed, out of memory, or its "
                                       "machine went away)")
        return None, StageOutcome("failed")
    return tracker, None


def fail(tracker: JobTracker, exc: BaseException, ctx: StageContext) -> None:
    """Record a failure; raise TransientJobError if it is worth another attempt, else JobFailed."""
    text = _error_text(exc, ctx.time_limit_s)
    if _is_transient(exc) and tracker.rec.attempts < ctx.max_attempts:
        tracker.requeue(text)
        raise TransientJobError(text) from exc
    tracker.finish("failed", error=text)
    raise JobFailed(text) from exc
