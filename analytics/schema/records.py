"""The views of the job records."""
from __future__ import annotations

from .base import View, cols

__all__ = ["RECORD_VIEWS"]

RECORD_VIEWS: tuple[View, ...] = (
    View(
        name="jobs",
        kind="jobs",
        grain="job",
        description="Background jobs (training, analysis, ...) and their status, as of each job's last change "
                    "of status or stage (live progress: `rnnvis jobs list`, the Jobs page).",
        columns=cols(
            ("job_id", "VARCHAR", "Job id (also the name of its store partition)."),
            ("kind", "VARCHAR", "What the job does (e.g. 'train', 'analyze')."),
            ("model_id", "VARCHAR", "Model the job is about, if any."),
            ("status", "VARCHAR", "'queued', 'running', 'done', 'failed' or 'cancelled'."),
            ("progress", "DOUBLE", "Fraction done, 0..1."),
            ("submitted_by", "VARCHAR", "User who submitted the job."),
            ("submitted_at", "TIMESTAMP", "When it was submitted (UTC)."),
            ("finished_at", "TIMESTAMP", "When it finished (UTC), or NULL."),
            ("error", "VARCHAR", "Error message if it failed, else NULL."),
            ("params", "VARCHAR", "What was submitted (preset, configs, corpus, analysis options) as JSON text."),
            ("detail", "VARCHAR", "Latest progress (epoch, step, loss, tokens/s), the per-epoch training curve "
                                  "and the result, as JSON text."),
            ("started_at", "TIMESTAMP", "When a worker first started it (UTC), or NULL while it waits."),
            ("heartbeat_at", "TIMESTAMP", "Last sign of life from the worker running it (UTC); a running job "
                                          "whose heartbeat is old is shown as 'lost'."),
            ("worker", "VARCHAR", "Worker running (or that ran) it: celery node name and process id."),
            ("attempts", "INTEGER", "Attempts so far (more than 1 after a worker was lost and another took over)."),
            ("stage", "VARCHAR", "Current stage: 'queued', 'train', 'import', 'analyze', 'publish' (the model is "
                                 "being made visible; it is there once the job is 'done') or 'done'."),
        ),
    ),
)
