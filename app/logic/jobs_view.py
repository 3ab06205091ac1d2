"""Jobs page views: the job list (status, live progress, where it is, duration, who, error, Cancel) and the
training curve of a job, read from the store's ``jobs`` view (so they need no broker)."""
from __future__ import annotations

import json
from typing import Any

from dash import dcc, html

from analytics import store
from analytics.settings import Settings
from app import figures, ids
from app.urlstate import ViewState, href
from workers import records
from workers.settings import JobSettings

ACTIVE_POLL_MS, IDLE_POLL_MS = 1000, 5000
COLUMNS = ("Job", "Model", "Kind", "Status", "Progress", "Where", "Loss", "Tokens/s", "Duration", "Submitted by",
           "Submitted", "Error", "")
STATUS_COLOURS = {"queued": "#9e9e9e", "running": "#1976d2", "done": "#2e7d32", "failed": "#c62828",
                  "cancelled": "#6d4c41", "cancelling": "#ef6c00", "lost": "#ad1457"}


def progress_bar(fraction: float, status: str) -> html.Div:
    """A bar and its percentage beside it (readable whatever the fill)."""
    pct = max(0.0, min(1.0, float(fraction or 0.0))) * 100
    bar = html.Div(html.Div(className="jobs-progress-fill",
                            style={"width": f"{pct:.1f}%", "background": STATUS_COLOURS.get(status, "#1976d2")}),
                   className="jobs-progress-track")
    return html.Div([bar, html.Span(f"{pct:.0f}%", className="jobs-progress-text")], className="jobs-progress",
                    role="progressbar", **{"aria-valuenow": f"{pct:.0f}", "aria-valuemin": "0",
                                           "aria-valuemax": "100"})


def fmt_duration(seconds: Any) -> str:
    if seconds is None or seconds != seconds:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def where(status: str, model_id: str | None, detail: dict[str, Any], model_exists: bool) -> Any:
    """Where a job is: its epoch and step, its analysis stage, or, once done, a link to its model."""
    if status == "done" and model_id:
        if not model_exists:
            return html.Span("model deleted", className="muted")
        return dcc.Link("open in Explore", href=href("/explore", ViewState(model=model_id)), className="jobs-open")
    latest = detail.get("latest") or {}
    if status not in ("queued", "running", "cancelling", "lost"):
        return ""
    if latest.get("stage") == "analyze" and latest.get("analysis_stage"):
        return f"analysis: {latest['analysis_stage']}"
    if latest.get("epoch"):
        return f"epoch {latest['epoch']}/{latest.get('epochs')}, step {latest.get('step')}/{latest.get('steps')}"
    return ""


def _number(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else ""


def _loss_and_speed(point: dict[str, Any], active: bool) -> list[html.Td]:
    """The Loss and Tokens/s cells: the latest batch's while a job runs, its last epoch's once it has ended."""
    loss = point.get("loss") if active else point.get("train_loss")
    tip = "the latest batch" if active else "the last epoch"
    return [html.Td(_number(loss, ".3f"), title=f"training loss of {tip}" if loss is not None else None),
            html.Td(_number(point.get("tokens_per_s"), ",.0f"))]


def jobs_table(df, models: set[str]) -> html.Table:
    """The job list, newest first, with a Cancel button on queued and running jobs."""
    rows = []
    for r in df.itertuples(index=False):
        try:
            detail = json.loads(r.detail) if isinstance(r.detail, str) else {}
        except ValueError:
            detail = {}
        latest = detail.get("latest") or {}
        status = r.display_status
        active = r.status in records.ACTIVE and status != "cancelling"
        model = r.model_id or ""
        rows.append(html.Tr([
            html.Td(r.job_id), html.Td(model), html.Td(r.kind),
            html.Td(status, className=f"jobs-status jobs-status-{status}", style={"color": STATUS_COLOURS.get(status)}),
            html.Td(progress_bar(r.progress, status)), html.Td(where(status, model, detail, model in models)),
            *_loss_and_speed(latest if active else _last_epoch(detail), active),
            html.Td(fmt_duration(r.duration_s)), html.Td(r.submitted_by or ""), html.Td(str(r.submitted_at)[:19]),
            html.Td(r.error or "", className="jobs-error"),
            html.Td(html.Button("Cancel", id={"type": ids.JOBS_CANCEL, "index": r.job_id}, n_clicks=0,
                                className="btn btn-small") if active else ""),
        ], id=f"jobs-row-{r.job_id}"))
    if not rows:
        rows = [html.Tr(html.Td("No jobs yet: submit one above, or run `rnnvis jobs submit`.",
                                colSpan=len(COLUMNS)))]
    return html.Table([html.Thead(html.Tr([html.Th(c) for c in COLUMNS])), html.Tbody(rows)],
                      className="table jobs-table")


def no_worker_warning(settings: Settings, js: JobSettings, df) -> html.Div | None:
    """A warning when jobs have waited in the queue for more than a heartbeat and no worker has said it is
    alive for ``stale_after_s`` (gunicorn starts no embedded worker; nothing would ever run them)."""
    from workers.celery_app import live_workers

    queued = df[df["status"] == "queued"]
    if queued.empty:
        return None
    waited = (records.utcnow() - queued["submitted_at"].min()).total_seconds()
    if waited < js.heartbeat_s or live_workers(settings.store, js.stale_after_s):
        return None
    where = "the broker of RNNVIS_BROKER_URL" if settings.broker_url else "this store's embedded queue"
    return html.Div(f"No job worker is running: {len(queued)} queued job(s) will wait. Start one with "
                    f"`rnnvis worker` (it takes jobs from {where}); `rnnvis serve` starts one itself, gunicorn "
                    "does not.", className="alert alert-warning jobs-no-worker", role="alert")


def job_list(settings: Settings, js: JobSettings, selected: str | None) -> tuple[Any, int, list[dict], str | None]:
    """(the job table, how soon to poll again, the jobs that have a curve, the one to show)."""
    df = records.list_jobs(settings.store, limit=100, stale_after_s=js.stale_after_s)
    models = set(store.list_partitions(settings.store, "models"))
    active = bool(df["status"].isin(list(records.ACTIVE)).any())
    options = [{"label": f"{r.job_id} ({r.model_id}, {r.display_status})", "value": r.job_id}
               for r in df.itertuples(index=False) if r.kind in ("train", "import")]
    if selected not in {o["value"] for o in options}:
        running = df[df["status"] == "running"]
        selected = running["job_id"].iloc[0] if len(running) else options[0]["value"] if options else None
    table = jobs_table(df, models)
    warning = no_worker_warning(settings, js, df)
    return ([warning, table] if warning else table), ACTIVE_POLL_MS if active else IDLE_POLL_MS, options, selected


def _last_epoch(detail: dict[str, Any]) -> dict[str, Any]:
    """The curve point of the last finished epoch ({} if none)."""
    curve = detail.get("curve") or []
    return max(curve, key=lambda p: p.get("epoch", 0)) if curve else {}


def job_curve(rec: records.JobRecord | None) -> tuple[figures.Figure, dict[str, str]]:
    """(the curve of ``rec``, the style of its card: hidden until a job is picked)."""
    if rec is None:
        return figures.message_figure("Pick a job."), {"display": "none"}
    return figures.job_curve_figure(rec.detail, f"{rec.model_id} ({rec.status})"), {}
