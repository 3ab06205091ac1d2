"""The job system's errors: what the app, the CLI and the workers catch."""
from __future__ import annotations

from collections.abc import Mapping

__all__ = ["JobError", "JobValidationError", "UnknownJobError", "NotAllowedError", "JobFailed", "TransientJobError"]


class JobError(Exception):
    """Anything wrong with a job."""


class JobValidationError(JobError, ValueError):
    """A request refused before anything was queued; ``errors`` maps form fields to messages."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class UnknownJobError(JobError, KeyError):
    def __init__(self, job_id: str, message: str | None = None):
        super().__init__(message or f"no job {job_id!r} in the store (`rnnvis jobs list` shows them)")

    def __str__(self) -> str:
        return str(self.args[0])


def invalid_job_id(job_id: object) -> UnknownJobError:
    """The error for a job id that cannot be one (``../../etc``): a message, never a traceback."""
    shown = str(job_id)[:40]
    return UnknownJobError(shown, f"invalid job id {shown!r}: job ids are letters, digits, '.', '_' "
                                  "and '-' (`rnnvis jobs list` shows them)")


class NotAllowedError(JobError, PermissionError):
    """The caller may not do this to the job (only its submitter or an admin may cancel it)."""


class JobFailed(JobError):
    """A stage failed for good; the record says why."""


class TransientJobError(JobError):
    """A stage failed for a reason that may go away (I/O hiccup on a shared store); retry it."""
