"""Worker processes: the embedded one that ``rnnvis serve`` runs, and the command line of any worker.

With no broker configured, :func:`start_embedded_worker` starts one ``celery
worker`` subprocess (prefork pool, one process) on the file-system broker
under ``<store>/.broker/`` for the life of the server; jobs then run through
exactly the same Celery tasks as with Redis. It logs to
``<store>/.broker/worker.log`` and dies with its parent.

With ``RNNVIS_BROKER_URL`` set it starts nothing (returns None): ``rnnvis
worker`` processes do the work.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from analytics.settings import Settings
from workers import records
from workers.celery_app import QUEUES, broker_folder
from workers.errors import UnknownJobError
from workers.settings import JobSettings

log = logging.getLogger(__name__)

__all__ = ["worker_argv", "worker_env", "start_embedded_worker", "stop_embedded_worker", "recover_lost_jobs"]


def worker_argv(*, queues: Sequence[str] = QUEUES, concurrency: int = 1, pool: str = "prefork",
                loglevel: str = "info", hostname: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """``python -m celery ... worker`` for the job queues (the same for embedded and Redis workers)."""
    bad = [q for q in queues if q not in QUEUES]
    if bad or not queues:
        raise ValueError(f"unknown queue(s) {', '.join(bad) or '(none)'}; use {', '.join(QUEUES)}")
    name = hostname or f"{'-'.join(queues)}-%i@%h"
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", ",".join(queues),
            "-c", str(int(concurrency)), "-P", pool, "-l", loglevel, "-n", name, "-O", "fair",
            "--without-gossip", "--without-mingle", *extra]


def worker_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a worker for ``settings`` needs (absolute store path; the broker URL if any)."""
    env = dict(os.environ if base is None else base)
    env["RNNVIS_STORE"] = str(Path(settings.store).expanduser().absolute())
    if settings.broker_url:
        env["RNNVIS_BROKER_URL"] = settings.broker_url
    else:
        env.pop("RNNVIS_BROKER_URL", None)
    if settings.device:
        env["RNNVIS_DEVICE"] = settings.device
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the server process dies
    except OSError:
        pass


def start_embedded_worker(settings: Settings, *, job_settings: JobSettings | None = None,
                          log_path: str | Path | None = None) -> subprocess.Popen | None:
    """Start the embedded worker (both queues, one process) unless a broker is configured.

    Call once when the server starts; pass the result to :func:`stop_embedded_worker`
    when it stops (also registered with ``atexit``). Jobs left running by a
    previous embedded worker that died are queued again first (they resume
    from their checkpoints).
    """
    if settings.broker_url:
        return None
    js = job_settings or JobSettings.from_env()
    folder = broker_folder(settings.store)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        recover_lost_jobs(settings, job_settings=js)
    except Exception:  # noqa: BLE001 - recovery must never keep the server from starting
        log.warning("could not recover lost jobs", exc_info=True)
    log_path = Path(log_path) if log_path else folder / "worker.log"
    with open(log_path, "ab") as out:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(worker_argv(hostname="embedded-%i@%h"), env=worker_env(settings),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                                start_new_session=True)
    atexit.register(stop_embedded_worker, proc)
    log.info("embedded worker started (pid %d), log %s", proc.pid, log_path)
    return proc


def stop_embedded_worker(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop the worker: warm shutdown (the current step finishes), then SIGKILL after ``timeout``.

    A training interrupted this way keeps its last epoch checkpoint and is
    resumed when the next embedded worker starts.
    """
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=5)


def recover_lost_jobs(settings: Settings, *, job_settings: JobSettings | None = None) -> list[str]:
    """Embedded broker only: queue again the jobs whose worker died (their messages died with it).

    A job counts as lost when it is ``running`` on this host and its process
    is gone. Returns the job ids queued again.
    """
    if settings.broker_url:
        return []
    from workers.client import resubmit
    from workers.tracker import owner_alive

    root = Path(settings.store).expanduser().absolute()
    again = []
    for job_id, _ in (records.jobs_with_status(root, "running") if root.exists() else []):
        try:
            rec = records.read_job(root, job_id)
        except UnknownJobError:                                        # deleted since
            continue
        if rec.status == "running" and owner_alive(rec.worker) is False:
            if records.cancel_requested(root, job_id):
                rec.status, rec.finished_at = "cancelled", records.utcnow()
                records.write_job(root, rec)
                continue
            resubmit(settings, job_id, job_settings=job_settings)
            again.append(job_id)
    if again:
        log.warning("queued %d lost job(s) again: %s", len(again), ", ".join(again))
    return again
