"""The views of the job records."""
from __future__ import annotations

from .base import View, cols

__all__ = ["RECORD_VIEWS", "ADMIN_VIEWS", "TEAM_VIEWS"]

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

#: Tables of the metadata database that an admin's SQL console also sees (nobody else's): kind ``metadata``,
#: no Parquet; :mod:`analytics.sandbox` adds them to an admin's query process as in-memory tables.
ADMIN_VIEWS: tuple[View, ...] = (
    View(
        name="audit",
        kind="metadata",
        grain="event",
        description="The audit log (admins only): every job submitted, cancelled or failed, every model deleted "
                    "or imported, every user added, removed or given another role, every throttled burst of "
                    "failed sign-ins; the newest 100,000 events.",
        columns=cols(
            ("happened_at", "TIMESTAMP", "When (UTC)."),
            ("who", "VARCHAR", "Who did it: a user, 'cli' or the command-line user, a worker; for a throttled "
                               "sign-in, the account name that was tried."),
            ("action", "VARCHAR", "'job submitted', 'job cancelled', 'job failed', 'model deleted', 'model "
                                  "imported', 'user added', 'user removed', 'user role changed', 'sign-in "
                                  "throttled' or 'note removed' (an admin removed someone's note)."),
            ("target", "VARCHAR", "What it was done to: a job id, a model id, a user name, or the address a "
                                  "throttled sign-in came from."),
            ("details", "VARCHAR", "More, as JSON text or a short note (a job's kind and model, an error, the "
                                   "old and new role, the throttle's reason)."),
        ),
    ),
)

#: Tables of the metadata database that every role's SQL console sees: kind ``metadata``, no Parquet;
#: the app adds them to a query process as in-memory tables, like the admins' ``audit``.
TEAM_VIEWS: tuple[View, ...] = (
    View(
        name="notes",
        kind="metadata",
        grain="note",
        description="The team's notes (every role reads them): plain text a member attached to a model, to a "
                    "cluster (layer, state, k, cluster) or to a unit (layer, state, unit); a model's notes go "
                    "when it is deleted; the newest 100,000 notes.",
        columns=cols(
            ("model_id", "VARCHAR", "The model the note is on."),
            ("layer", "INTEGER", "Layer of the cluster or unit noted; NULL for a note on the model."),
            ("state", "VARCHAR", "State ('h', 'c', ...) of the cluster or unit noted; NULL for a note on the model."),
            ("k", "INTEGER", "Number of clusters the noted cluster was one of; NULL unless a cluster note."),
            ("cluster", "INTEGER", "The cluster noted (H0, H1, ... at k); NULL unless a cluster note."),
            ("unit", "INTEGER", "The unit noted; NULL unless a unit note."),
            ("body", "VARCHAR", "The note, plain text, at most 2,000 characters."),
            ("author", "VARCHAR", "Who wrote it ('local' in open mode)."),
            ("created_at", "TIMESTAMP", "When it was written (UTC)."),
        ),
    ),
)
