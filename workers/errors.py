"""The job system's errors: what the app, the CLI and the workers catch."""
from __future__ import annotations

from collections.abc import Mapping

__all__ = ["JobError", "JobValidationError", "UnknownJobError", "JobFailed", "TransientJobError"]


class JobError(Exception):
    """Anything wrong with a job."""


class JobValidationError(JobError, ValueError):
    """A request refused before anything was queued; ``errors`` maps form fields to messages."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class UnknownJobError(JobError, KeyError):
    def __init__(self, job_id: str):
        super().__init__(f"no job {job_id!r} in the store (`rnnvis jobs list` shows them)")

    def __str__(self) -> str:
        return str(self.args[0])


class JobFailed(JobError):
    """A stage failed for good; the record says why."""


class TransientJobError(JobError):
    """A stage failed for a reason that may go away (I/O hiccup on a shared store); retry it."""
