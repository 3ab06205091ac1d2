"""Model-id claims: which job builds a model id, taken atomically when a train or import job is submitted.

A claim is a file ``<store>/.claims/<model_id>`` holding the job id, created
with ``O_CREAT | O_EXCL`` so that of two submissions of the same id exactly
one gets it, on one machine or on several sharing the store. Taking over a
stale claim (its job failed, was cancelled or is gone, or finished but its
model was deleted) happens under an exclusive ``flock`` of
``<store>/.claims/.lock``, which every claim and release also holds.

A claim is released when its job ends failed or cancelled, when the job
record is removed because nothing could be queued, and when the model is
deleted (``rnnvis delete``, the admin page).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from analytics import store
from models.checkpoint import checkpoint_file
from workers.errors import JobValidationError, UnknownJobError

__all__ = ["CLAIM_DIR", "claim_model_id", "release_model_id", "claim_holder"]

CLAIM_DIR = ".claims"
#: A claim whose job record was never written (its submitter died between the two) is stale after this long.
ORPHAN_AFTER_S = 300.0


def _dir(root: str | os.PathLike) -> Path:
    d = Path(root).expanduser().absolute() / CLAIM_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def _locked(root: str | os.PathLike) -> Iterator[Path]:
    d = _dir(root)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)  # closing releases the lock


def claim_holder(root: str | os.PathLike, model_id: str) -> str | None:
    """The job id holding ``model_id``'s claim, or None."""
    store.validate_id(model_id, "model_id")
    try:
        return (Path(root).expanduser().absolute() / CLAIM_DIR / model_id).read_text().strip() or None
    except FileNotFoundError:
        return None


def _stale(root: str | os.PathLike, model_id: str, holder: str, path: Path) -> bool:
    from workers.records import read_job
    try:
        rec = read_job(root, holder)
    except UnknownJobError:
        try:
            return time.time() - path.stat().st_mtime > ORPHAN_AFTER_S
        except FileNotFoundError:
            return True
    if rec.model_id != model_id or rec.status in ("failed", "cancelled"):
        return True
    if rec.status == "done":  # its model was deleted since
        return not (checkpoint_file(root, model_id).exists()
                    or store.partition_path(root, "models", model_id).exists())
    return False


def _create(path: Path, job_id: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(job_id)
    return True


def claim_model_id(root: str | os.PathLike, model_id: str, job_id: str) -> None:
    """Claim ``model_id`` for ``job_id`` (a no-op when that job already holds it); JobValidationError on field
    ``model_id`` when another job holds it."""
    store.validate_id(model_id, "model_id")
    with _locked(root) as d:
        path = d / model_id
        if _create(path, job_id):
            return
        holder = claim_holder(root, model_id)
        if holder == job_id:
            return
        if holder is None or _stale(root, model_id, holder, path):
            path.unlink(missing_ok=True)
            if _create(path, job_id):
                return
            holder = claim_holder(root, model_id)
    raise JobValidationError({"model_id": f"model id {model_id!r} is taken: job {holder} builds it; "
                                          "choose another id"})


def release_model_id(root: str | os.PathLike, model_id: str | None, job_id: str | None = None) -> None:
    """Drop ``model_id``'s claim (only if ``job_id`` holds it, when given). Never raises for a missing claim."""
    if not model_id:
        return
    try:
        store.validate_id(model_id, "model_id")
    except ValueError:
        return
    with _locked(root) as d:
        path = d / model_id
        if job_id is not None and claim_holder(root, model_id) != job_id:
            return
        path.unlink(missing_ok=True)
