"""The Celery app, built from settings by :func:`make_celery`.

Two brokers, one code path:

- ``RNNVIS_BROKER_URL=redis://host:6379/0``: the app only enqueues; ``rnnvis
  worker`` processes on any machines that share the store do the work.
- no broker URL (embedded): messages are files under ``<store>/.broker/``
  (:mod:`workers.fs_transport`), consumed by the embedded worker that ``rnnvis
  serve`` starts (:mod:`workers.embedded`) or by ``rnnvis worker``.

No result backend: jobs report through their records in the store.
Queues: ``train`` (training) and ``analyze`` (analysis, model import, on-demand ablations).

Presence: every worker touches ``<store>/.workers/<node name>`` each heartbeat while it runs
(:func:`live_workers` reads them), so the Jobs page can warn that queued jobs will wait when no worker
is running (e.g. gunicorn serving the app, which starts no embedded worker, and no ``rnnvis worker``).

``celery -A workers.celery_app worker`` finds the module-level ``app``, built
lazily from the environment on first access (importing this module builds
nothing).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery

from analytics.settings import Settings
from workers import fs_transport
from workers.names import (
    QUEUE_ANALYZE,
    QUEUE_TRAIN,
    QUEUES,
    TASK_ABLATE,
    TASK_ANALYZE,
    TASK_IMPORT,
    TASK_PING,
    TASK_TRAIN,
)
from workers.settings import JobSettings

__all__ = ["make_celery", "broker_folder", "live_workers", "PRESENCE_DIR", "QUEUE_TRAIN", "QUEUE_ANALYZE", "QUEUES",
           "TASK_TRAIN", "TASK_ANALYZE", "TASK_IMPORT", "TASK_ABLATE", "TASK_PING"]


fs_transport.register()


def broker_folder(store: str | Path) -> Path:
    """Where the embedded broker keeps its messages."""
    return Path(store).expanduser().absolute() / ".broker"


PRESENCE_DIR = ".workers"


def _presence_file(store: str | Path, node: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "@._-" else "_" for c in node)[:200] or "worker"
    return Path(store).expanduser().absolute() / PRESENCE_DIR / safe


def live_workers(store: str | Path, within_s: float) -> list[str]:
    """The workers (node names) that said they were alive in the last ``within_s`` seconds."""
    folder = Path(store).expanduser().absolute() / PRESENCE_DIR
    now = time.time()
    try:
        return sorted(p.name for p in folder.iterdir() if now - p.stat().st_mtime <= within_s)
    except OSError:
        return []


def _announce(sender: Any = None, **_: Any) -> None:
    """On ``worker_ready`` (the worker's main process): touch the presence file every heartbeat until shutdown."""
    app = getattr(sender, "app", None)
    settings, js = getattr(app, "rnnvis_settings", None), getattr(app, "rnnvis_jobs", None)
    if settings is None or js is None:
        return
    path = _presence_file(settings.store, getattr(sender, "hostname", None) or "worker")
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            except OSError:
                pass
            stop.wait(js.heartbeat_s)

    def leave(**_: Any) -> None:
        stop.set()
        path.unlink(missing_ok=True)

    from celery import signals
    signals.worker_shutdown.connect(leave, weak=False, dispatch_uid=f"rnnvis-presence-{path}")
    threading.Thread(target=beat, name="rnnvis-presence", daemon=True).start()


def _transport_options(settings: Settings, js: JobSettings) -> tuple[str, dict[str, Any]]:
    if settings.broker_url:
        opts: dict[str, Any] = {
            "visibility_timeout": js.visibility_timeout,
            "unacked_restore_interval": max(1.0, min(10.0, js.visibility_timeout / 3)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
            "health_check_interval": 10,
        }
        if js.broker_prefix:
            opts["global_keyprefix"] = js.broker_prefix
        return settings.broker_url, opts
    folder = broker_folder(settings.store)
    queue, claimed, control = folder / "queue", folder / "claimed", folder / "control"
    for d in (queue, claimed, control):
        d.mkdir(parents=True, exist_ok=True)
    return "rnnvisfs://localhost", {"data_folder_in": str(queue), "data_folder_out": str(queue),
                           "processed_folder": str(claimed), "control_folder": str(control),
                           "store_processed": False, "polling_interval": js.broker_poll_s}


def make_celery(settings: Settings, job_settings: JobSettings | None = None) -> Celery:
    """A Celery app for ``settings`` (its broker, or the embedded one), with the job tasks registered."""
    from workers.tasks import register_tasks

    js = job_settings or JobSettings.from_env()
    url, options = _transport_options(settings, js)
    app = Celery("rnnvis", set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_transport_options=options,
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=4,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,                  # a task is acknowledged when it ends, not when it starts
        task_reject_on_worker_lost=True,      # ... and requeued if the process running it dies
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,         # long tasks: take one at a time
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue=QUEUE_ANALYZE,
        task_create_missing_queues=True,
        task_routes={TASK_TRAIN: {"queue": QUEUE_TRAIN}, TASK_ANALYZE: {"queue": QUEUE_ANALYZE},
                     TASK_IMPORT: {"queue": QUEUE_ANALYZE}, TASK_ABLATE: {"queue": QUEUE_ANALYZE}},
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_redirect_stdouts_level="INFO",
    )
    app.rnnvis_settings = settings      # read by the tasks (the worker's own store path and device)
    app.rnnvis_jobs = js
    register_tasks(app)
    from celery import signals
    signals.worker_ready.connect(_announce, weak=False, dispatch_uid="rnnvis-presence")
    return app


_lazy: dict[str, Celery] = {}
_lazy_lock = threading.Lock()


def __getattr__(name: str) -> Celery:
    """``workers.celery_app.app``: the app of this process's environment, built on first use (for the celery CLI)."""
    if name in ("app", "celery"):
        with _lazy_lock:
            if "app" not in _lazy:
                _lazy["app"] = make_celery(Settings.from_env(), JobSettings.from_env())
        return _lazy["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
