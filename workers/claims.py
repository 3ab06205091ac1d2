"""Model-id claims: which job builds a model id, taken atomically when a train or import job is submitted.

A claim is a row of the metadata database's ``claims`` table (:mod:`workers.jobdb`),
model id -> job id. Claiming is one write transaction (``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL): it reads the current holder, decides
whether that claim is stale (its job failed, was cancelled or is gone, or
finished but its model was deleted) and writes the new one while holding the
database's write lock, so of concurrent submissions of one id, from threads,
processes, hosts or the CLI, exactly one gets it.

A claim is released when its job ends failed or cancelled, when the job
record is removed because nothing could be queued, and when the model is
deleted (``rnnvis delete``, the admin page).
"""
from __future__ import annotations

import os
import time

from sqlalchemy.engine import Connection

from analytics import store
from models.checkpoint import checkpoint_file
from workers import jobdb
from workers.errors import JobValidationError
from workers.records import job_db

__all__ = ["claim_model_id", "release_model_id", "claim_holder"]

#: A claim whose job record was never written (its submitter died between the two) is stale after this long.
ORPHAN_AFTER_S = 300.0


def claim_holder(root: str | os.PathLike, model_id: str) -> str | None:
    """The job id holding ``model_id``'s claim, or None."""
    store.validate_id(model_id, "model_id")
    held = jobdb.claim_holder(job_db(root), model_id)
    return None if held is None else held[0]


def _stale(con: Connection, root: str | os.PathLike, model_id: str, holder: str, claimed_at: float) -> bool:
    job = jobdb.get(con, holder)
    if job is None:
        return time.time() - claimed_at > ORPHAN_AFTER_S
    if job["model_id"] != model_id or job["status"] in ("failed", "cancelled"):
        return True
    if job["status"] == "done":  # its model was deleted since
        return not (checkpoint_file(root, model_id).exists()
                    or store.partition_path(root, "models", model_id).exists())
    return False


def claim_model_id(root: str | os.PathLike, model_id: str, job_id: str) -> None:
    """Claim ``model_id`` for ``job_id`` (a no-op when that job already holds it); JobValidationError on field
    ``model_id`` when another job holds it."""
    store.validate_id(model_id, "model_id")
    with jobdb.transaction(job_db(root)) as con:
        held = jobdb.claim_holder(con, model_id)
        if held is None or held[0] == job_id or _stale(con, root, model_id, *held):
            jobdb.set_claim(con, model_id, job_id, time.time())
            return
    raise JobValidationError({"model_id": f"model id {model_id!r} is taken: job {held[0]} builds it; "
                                          "choose another id"})


def release_model_id(root: str | os.PathLike, model_id: str | None, job_id: str | None = None) -> None:
    """Drop ``model_id``'s claim (only if ``job_id`` holds it, when given). Never raises for a missing claim."""
    if not model_id:
        return
    try:
        store.validate_id(model_id, "model_id")
    except ValueError:
        return
    with jobdb.transaction(job_db(root)) as con:
        jobdb.drop_claim(con, model_id, job_id)
