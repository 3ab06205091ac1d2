"""Submitting, cancelling and re-running jobs: what the app and the CLI call.

::

    from workers import client
    rec = client.submit_train(settings, {"preset": "demo-gru", "epochs": 3}, submitted_by="ann")
    client.cancel(settings, rec.job_id, by="ann")

Every request is validated first (:class:`workers.errors.JobValidationError`
with field-level messages; nothing is queued). A job's record is written
(``queued``) before its message is published; if the broker cannot be
reached the record is removed again and :class:`BrokerUnavailable` raised
within about two seconds, so no job stays ``queued`` that was never sent.
The reading side (job list, dashboards) never needs the broker.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery, chain
from kombu.exceptions import KombuError, OperationalError

from analytics.metadb import audit
from analytics.settings import Settings
from models.checkpoint import checkpoint_file
from workers import claims, records
from workers.celery_app import (
    QUEUE_ANALYZE,
    QUEUE_TRAIN,
    TASK_ABLATE,
    TASK_ANALYZE,
    TASK_IMPORT,
    TASK_TRAIN,
    make_celery,
)
from workers.errors import JobError, NotAllowedError
from workers.planning import next_stage, plan_analyze_job, plan_import_job, plan_train_job
from workers.records import JobRecord
from workers.settings import JobSettings

log = logging.getLogger(__name__)

__all__ = ["BrokerUnavailable", "celery_for", "submit", "submit_train", "submit_import", "submit_analyze",
           "submit_ablate", "cancel", "resubmit"]


class BrokerUnavailable(JobError):
    """The job queue (Redis) cannot be reached; nothing was queued."""


#: Job kinds that build a new model (and so claim its id).
MODEL_KINDS = ("train", "import")

_apps: dict[tuple, Celery] = {}
_apps_lock = threading.Lock()


def celery_for(settings: Settings, job_settings: JobSettings | None = None) -> Celery:
    """The Celery app for ``settings``, built once per process (it holds the broker connection pool)."""
    js = job_settings or JobSettings.from_env()
    key = (settings.broker_url, str(Path(settings.store).expanduser().absolute()), js)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            app = _apps[key] = make_celery(settings, js)
        return app


def _root(settings: Settings) -> Path:
    return Path(settings.store).expanduser().absolute()


def _signature(app: Celery, rec: JobRecord):
    """The message(s) of the job's next stage; a train or import stage is chained to the analysis."""
    stage = next_stage(rec)
    ids = rec.params.setdefault("task_ids", {})
    if stage == "ablate":
        return _sig(app, TASK_ABLATE, rec.job_id, QUEUE_ANALYZE, ids, "ablate")
    analyze = _sig(app, TASK_ANALYZE, rec.job_id, QUEUE_ANALYZE, ids, "analyze")
    if stage == "train":
        return chain(_sig(app, TASK_TRAIN, rec.job_id, QUEUE_TRAIN, ids, "train"), analyze, app=app)
    if stage == "import":
        return chain(_sig(app, TASK_IMPORT, rec.job_id, QUEUE_ANALYZE, ids, "import"), analyze, app=app)
    return analyze


def _sig(app: Celery, name: str, job_id: str, queue: str, ids: dict[str, str], stage: str):
    ids[stage] = str(uuid.uuid4())
    return app.signature(name, args=(job_id,), queue=queue, immutable=True, task_id=ids[stage])


def _publish(app: Celery, sig) -> None:
    try:
        sig.apply_async(retry=False)  # fail fast: no retry loop while the broker is down
    except (OperationalError, KombuError, ConnectionError, OSError, TimeoutError) as e:
        where = app.conf.broker_url.split("@")[-1]
        raise BrokerUnavailable(f"cannot reach the job queue at {where} ({e}); nothing was queued. "
                                "Check that Redis is running, then submit again") from e


def submit(settings: Settings, rec: JobRecord, job_settings: JobSettings | None = None) -> JobRecord:
    """Write ``rec`` (queued) and publish its next stage; BrokerUnavailable leaves no record behind.

    A train or import job first claims its model id (:mod:`workers.claims`); when another job holds it,
    JobValidationError says ``model id ... is taken`` and nothing is written."""
    app = celery_for(settings, job_settings)
    root = _root(settings)
    rec.status, rec.error, rec.finished_at = "queued", None, None
    sig = _signature(app, rec)  # fills rec.params["task_ids"] before the record is written
    builds = rec.kind in MODEL_KINDS
    if builds:  # atomic: of concurrent submissions of one model id, exactly one gets past this
        claims.claim_model_id(root, rec.model_id, rec.job_id)
    try:
        records.write_job(root, rec)
    except BaseException:
        if builds:
            claims.release_model_id(root, rec.model_id, rec.job_id)
        raise
    try:
        _publish(app, sig)
    except BrokerUnavailable:
        records.delete_job(root, rec.job_id)
        if builds:
            claims.release_model_id(root, rec.model_id, rec.job_id)
        raise
    log.info("queued job %s (%s of %s)", rec.job_id, rec.kind, rec.model_id)
    audit.record(root, rec.submitted_by, "job submitted", rec.job_id, {"kind": rec.kind, "model_id": rec.model_id})
    return rec


def submit_train(settings: Settings, request: Mapping[str, Any], *, submitted_by: str = "", admin: bool = False,
                 job_settings: JobSettings | None = None) -> JobRecord:
    """Validate a training request (see :func:`workers.planning.plan_train_job`) and queue it. ``admin``: the
    submitter may use anyone's uploads."""
    rec = plan_train_job(_root(settings), request, submitted_by=submitted_by, admin=admin)
    return submit(settings, rec, job_settings)


def submit_import(settings: Settings, request: Mapping[str, Any], *, submitted_by: str = "", admin: bool = False,
                  job_settings: JobSettings | None = None) -> JobRecord:
    """Validate a bring-your-own-model request (see :func:`workers.planning.plan_import_job`) and queue it."""
    rec = plan_import_job(_root(settings), request, submitted_by=submitted_by, admin=admin)
    return submit(settings, rec, job_settings)


def submit_analyze(settings: Settings, model_id: str, analysis: Mapping[str, Any] | None = None, *,
                   corpus: Any = None, submitted_by: str = "", admin: bool = False,
                   job_settings: JobSettings | None = None) -> JobRecord:
    """Queue a (re-)analysis of a stored checkpoint."""
    rec = plan_analyze_job(_root(settings), model_id, analysis, corpus=corpus, submitted_by=submitted_by,
                           admin=admin)
    return submit(settings, rec, job_settings)


def submit_ablate(settings: Settings, request: Mapping[str, Any], *, submitted_by: str = "",
                  job_settings: JobSettings | None = None) -> JobRecord:
    """Queue an on-demand ablation of a stored model's units (see :func:`workers.ablate_planning.plan_ablate_job`)."""
    from workers.ablate_planning import plan_ablate_job  # imports torch: only when an ablation is asked for

    rec = plan_ablate_job(_root(settings), request, submitted_by=submitted_by)
    return submit(settings, rec, job_settings)


def cancel(settings: Settings, job_id: str, *, by: str = "", admin: bool = False,
           job_settings: JobSettings | None = None) -> str:
    """Cancel a queued or running job; returns what the job list will show (``cancelled`` / ``cancelling``).

    Only the job's submitter (``by`` equal to its ``submitted_by``) or an admin (``admin=True``) may cancel it;
    anyone else gets :class:`~workers.errors.NotAllowedError`. A malformed ``job_id`` is an
    :class:`~workers.errors.UnknownJobError` saying so.

    A running job stops at its next training or tracing step (what it wrote
    is a resumable checkpoint or nothing); a queued one is marked cancelled
    at once and its message dropped by whichever worker receives it.
    """
    root = _root(settings)
    rec = records.read_job(root, job_id)
    if not admin and by != rec.submitted_by:
        raise NotAllowedError(f"job {job_id} was submitted by {rec.submitted_by or 'someone else'}; only they or "
                              f"an admin can cancel it")
    if rec.status in records.TERMINAL:
        raise JobError(f"job {job_id} is already {rec.status}")
    records.request_cancel(root, job_id, by)
    audit.record(root, by, "job cancelled", job_id, {"kind": rec.kind, "model_id": rec.model_id, "was": rec.status})
    if rec.status == "queued":
        rec.status, rec.finished_at = "cancelled", records.utcnow()
        rec.detail["cancelled_by"] = by
        records.write_job(root, rec)
        if rec.kind in MODEL_KINDS:
            claims.release_model_id(root, rec.model_id, rec.job_id)
        if settings.broker_url:
            _revoke(celery_for(settings, job_settings), list(rec.params.get("task_ids", {}).values()))
        return "cancelled"
    return "cancelling"


def _revoke(app: Celery, task_ids: list[str]) -> None:
    """Tell the workers to drop these messages (best effort: the cancel flag does the real work)."""
    if not task_ids:
        return
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            app.control.revoke(task_ids, connection=conn)
    except (OperationalError, KombuError, ConnectionError, OSError, TimeoutError) as e:
        log.warning("could not revoke %s: %s", task_ids, e)


def resubmit(settings: Settings, job_id: str, *, job_settings: JobSettings | None = None) -> JobRecord:
    """Queue a failed, cancelled or lost job again from the stage it stopped in (training resumes from
    its last epoch checkpoint)."""
    root = _root(settings)
    rec = records.read_job(root, job_id)
    if rec.status == "done":
        raise JobError(f"job {job_id} is done; submit a new one")
    previous = JobRecord(**{**rec.__dict__, "params": dict(rec.params), "detail": dict(rec.detail)})
    with contextlib.suppress(OSError):
        (root / records.CANCEL_DIR / job_id).unlink(missing_ok=True)
    rec.attempts, rec.worker, rec.heartbeat_at = 0, None, None
    rec.detail.setdefault("resubmitted", []).append(records.utcnow().isoformat())
    if rec.stage in ("publish", "done"):  # publishing is the end of the analysis: run that again
        rec.stage = "analyze"
    if rec.kind == "import" and not checkpoint_file(root, rec.model_id).exists():
        rec.stage = "import"  # a failed import removed its checkpoint: import again
    try:
        return submit(settings, rec, job_settings)
    except BrokerUnavailable:
        records.write_job(root, previous)
        raise
