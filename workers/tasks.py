"""Thin Celery tasks: a job id in, one stage of :mod:`workers.stages` run, a small JSON result out.

``train_model`` (queue ``train``) and ``import_model`` (queue ``analyze``) are
chained to ``analyze_model`` (queue ``analyze``) by :mod:`workers.client`, so
a finished training is analysed without anyone asking. A stage that did not
finish normally (cancelled, already done elsewhere, given up) raises
``Ignore``: the message is acknowledged and the chain stops there. Files,
DuckDB and torch are opened inside the task, never at import.

Reliability: ``acks_late`` + ``reject_on_worker_lost``: if the process running
a task dies (SIGKILL, out of memory) the task is requeued at once and taken
over, resuming from the last epoch checkpoint. If the whole worker dies, the
broker hands the task out again after ``RNNVIS_VISIBILITY_TIMEOUT``; while a
task runs, its heartbeat renews that lease, so a long training is never
handed out twice. Only transient I/O errors are retried (with back-off).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore

from workers.errors import TransientJobError
from workers.names import TASK_ABLATE, TASK_ANALYZE, TASK_IMPORT, TASK_PING, TASK_TRAIN
from workers.stages import run_ablate_stage, run_analyze_stage, run_import_stage, run_train_stage
from workers.tracker import DONE, StageContext, worker_name

log = logging.getLogger(__name__)


class _LeaseRenewer:
    """Keeps the broker from handing a running task to another worker (Redis only).

    kombu's Redis transport re-queues a delivered message whose entry in the
    ``unacked_index`` sorted set is older than the visibility timeout; a live
    task refreshes that entry's score at every heartbeat (``ZADD XX``).
    """

    def __init__(self, task: Task):
        self.task = task
        props = getattr(task.request, "properties", None) or {}
        self.tag = props.get("delivery_tag")
        url = task.app.conf.broker_url or ""
        self.enabled = bool(self.tag) and url.startswith(("redis://", "rediss://", "unix://"))
        self.key = task.app.rnnvis_jobs.broker_prefix + "unacked_index"
        self.client: Any = None

    def __call__(self) -> None:
        if not self.enabled:
            return
        if self.client is None:
            import redis
            self.client = redis.Redis.from_url(self.task.app.conf.broker_url, socket_connect_timeout=2,
                                               socket_timeout=5)
        self.client.zadd(self.key, {self.tag: time.time()}, xx=True)

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None


def _device(settings) -> Any:
    import torch

    from models.train import default_device
    return torch.device(settings.device) if settings.device else default_device()


def _run(task: Task, job_id: str, stage: str, fn: Callable[[StageContext], str], time_limit: float) -> dict[str, Any]:
    settings, js = task.app.rnnvis_settings, task.app.rnnvis_jobs
    lease = _LeaseRenewer(task)
    ctx = StageContext(root=Path(settings.store).expanduser().absolute(), job_id=job_id,
                       worker=worker_name(task.request.hostname), device=_device(settings),
                       heartbeat_s=js.heartbeat_s, stale_after_s=js.stale_after_s, max_attempts=js.max_attempts,
                       time_limit_s=time_limit, on_heartbeat=lease)
    t0 = time.perf_counter()
    try:
        outcome = fn(ctx)
    finally:
        lease.close()
    wall = round(time.perf_counter() - t0, 3)
    log.info("job %s: %s stage %s in %.1fs", job_id, stage, outcome, wall)
    if outcome != DONE:
        raise Ignore()  # acknowledged; the chain stops here
    return {"job_id": job_id, "stage": stage, "outcome": str(outcome), "wall_s": wall}


def preload(**_: Any) -> None:
    """Import torch and the training code in the worker's main process, before it forks its pool, so
    that a task does not pay for the imports (about 3-5 s) when it starts."""
    import analytics.pipeline  # noqa: F401
    import models.importer  # noqa: F401
    import models.train  # noqa: F401


def register_tasks(app: Celery) -> None:
    """Register the job tasks on ``app`` (called by :func:`workers.celery_app.make_celery`)."""
    from celery import signals

    signals.worker_init.connect(preload, weak=False, dispatch_uid="rnnvis-preload")
    js = app.rnnvis_jobs
    common = dict(bind=True, shared=False, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                  autoretry_for=(TransientJobError,), max_retries=max(0, js.max_attempts - 1),
                  retry_backoff=5, retry_backoff_max=300, retry_jitter=True)

    @app.task(name=TASK_TRAIN, soft_time_limit=js.train_time_limit, time_limit=js.train_time_limit + 60, **common)
    def train_model(self: Task, job_id: str) -> dict[str, Any]:
        """Train the model of job ``job_id`` (resuming from its checkpoint on a later attempt)."""
        return _run(self, job_id, "train", run_train_stage, js.train_time_limit)

    @app.task(name=TASK_IMPORT, soft_time_limit=js.analyze_time_limit, time_limit=js.analyze_time_limit + 60,
              **common)
    def import_model(self: Task, job_id: str) -> dict[str, Any]:
        """Turn the uploaded model of job ``job_id`` into an RNNVis checkpoint."""
        return _run(self, job_id, "import", run_import_stage, js.analyze_time_limit)

    @app.task(name=TASK_ANALYZE, soft_time_limit=js.analyze_time_limit, time_limit=js.analyze_time_limit + 60,
              **common)
    def analyze_model(self: Task, job_id: str) -> dict[str, Any]:
        """Analyse the model of job ``job_id`` and publish its tables."""
        return _run(self, job_id, "analyze", run_analyze_stage, js.analyze_time_limit)

    @app.task(name=TASK_ABLATE, soft_time_limit=js.analyze_time_limit, time_limit=js.analyze_time_limit + 60,
              **common)
    def ablate_units(self: Task, job_id: str) -> dict[str, Any]:
        """Ablate the units of job ``job_id`` (an on-demand "Test these units") and add the rows to the store."""
        return _run(self, job_id, "ablate", run_ablate_stage, js.analyze_time_limit)

    @app.task(name=TASK_PING, bind=True, shared=False, ignore_result=True, acks_late=False)
    def ping(self: Task, marker: str) -> dict[str, Any]:
        """Write ``<store>/.broker/pings/<marker>`` with the time this task started (latency benchmarks)."""
        from analytics.store import validate_id

        started = time.time()
        validate_id(marker, "marker")
        folder = Path(self.app.rnnvis_settings.store).expanduser().absolute() / ".broker" / "pings"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / marker).write_text(repr(started))
        return {"started": started}
