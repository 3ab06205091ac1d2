"""Jobs page: submit a model (preset or custom, built-in or uploaded corpus), bring your own model,
and follow every job live (status, progress bar, training curve, duration, who, error; cancel).

Everything is read from the store's ``jobs`` view (so the page works with
the broker down, and after restarts); submitting goes through
:mod:`workers.client`, which validates first and fails fast with a clear
message when the job queue cannot be reached. Component ids start with
``jobs-``.
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/jobs", name="Jobs", order=3)


class IDS:
    interval = "jobs-interval"
    refresh = "jobs-refresh"
    table = "jobs-table"
    banner = "jobs-banner"
    cancel_msg = "jobs-cancel-msg"
    cancel = "jobs-cancel"                     # pattern-matching: {"type": cancel, "index": job_id}
    preset = "jobs-preset"
    corpus_source = "jobs-corpus-source"
    corpus_builtin = "jobs-corpus-builtin"
    corpus_upload = "jobs-corpus-upload"
    corpus_format = "jobs-corpus-format"
    corpus_upload_store = "jobs-corpus-upload-id"
    corpus_upload_status = "jobs-corpus-upload-status"
    model_id = "jobs-model-id"
    name = "jobs-name"
    submit = "jobs-submit"
    curve_job = "jobs-curve-job"
    curve = "jobs-curve"
    byom_weights = "jobs-byom-weights"
    byom_vocab = "jobs-byom-vocab"
    byom_weights_status = "jobs-byom-weights-status"
    byom_vocab_status = "jobs-byom-vocab-status"
    byom_corpus = "jobs-byom-corpus"
    byom_model_id = "jobs-byom-model-id"
    byom_submit = "jobs-byom-submit"
    byom_msg = "jobs-byom-msg"

    @staticmethod
    def field(name: str) -> str:
        return f"jobs-field-{name.replace('_', '-')}"

    @staticmethod
    def error(name: str) -> str:
        return f"jobs-error-{name.replace('_', '-')}"


#: The model fields of the form, with labels and input steps.
FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("layers", "Layers", 1), ("hidden_size", "Hidden size", 1), ("embed_size", "Embedding size", 1),
    ("epochs", "Epochs", 1), ("lr", "Learning rate", "any"), ("batch_size", "Batch size", 1),
    ("bptt", "BPTT length", 1), ("dropout", "Dropout", "any"),
)
ERROR_FIELDS = ("preset", "cell") + tuple(f for f, _, _ in FIELDS) + ("corpus", "model_id", "name")
BYOM_ERROR_FIELDS = ("weights", "vocab", "corpus", "model_id")
ACTIVE_POLL_MS, IDLE_POLL_MS = 1000, 5000
_STATUS_COLOURS = {"queued": "#9e9e9e", "running": "#1976d2", "done": "#2e7d32", "failed": "#c62828",
                   "cancelled": "#6d4c41", "cancelling": "#ef6c00", "lost": "#ad1457"}
_ERR_STYLE = {"color": "#c62828", "fontSize": "0.85em", "minHeight": "1em"}


# --------------------------------------------------------------------------- helpers (no Dash state)


def _settings():
    from analytics.settings import Settings
    try:
        from app import context
        return context.settings()
    except (KeyError, RuntimeError, ImportError):  # outside the dashboard's app (tools, tests)
        return Settings.from_env()


def _job_settings():
    from workers.settings import JobSettings
    return JobSettings.from_env()


def current_user() -> str:
    """Who is submitting: the signed-in member (hosted mode) or the implicit local user (open mode)."""
    from app import auth
    return auth.require_role("member").name


def decode_upload(contents: str | None, filename: str | None, max_bytes: int, field: str) -> tuple[str, bytes]:
    """A dcc.Upload ``contents`` data URL as (name, bytes); JobValidationError on ``field`` if unusable."""
    from analytics.jobs import JobValidationError
    if not contents:
        raise JobValidationError({field: "no file uploaded"})
    _, _, data = contents.partition(",")
    if len(data) * 3 // 4 > max_bytes + 4:
        raise JobValidationError({field: f"{filename} is {len(data) * 3 / 4 / 2**20:.1f} MB; the limit is "
                                         f"{max_bytes / 2**20:.0f} MB (RNNVIS_MAX_UPLOAD_MB)"})
    try:
        return filename or "upload", base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise JobValidationError({field: f"{filename}: the upload is damaged; try again"}) from None


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def preset_values(preset: str | None) -> dict[str, Any]:
    """The form values of a preset (the defaults of a custom model for None / 'custom')."""
    from models.config import ModelConfig, TrainConfig, get_preset
    if preset and preset != "custom":
        p = get_preset(preset)
        m, t = p.model, p.train
    else:
        m, t = ModelConfig(), TrainConfig()
    values = {"cell": m.cell, "layers": m.layers, "hidden_size": m.hidden_size, "embed_size": m.embed_size,
              "epochs": t.epochs, "lr": t.lr, "batch_size": t.batch_size, "bptt": t.bptt, "dropout": m.dropout}
    values["corpus"] = t.corpus
    return values


def build_request(preset, cell, values: dict[str, Any], source, builtin, upload, model_id, name) -> dict[str, Any]:
    """The training request that the form describes (see analytics.jobs.plan_train_job)."""
    req: dict[str, Any] = {"preset": None if preset in (None, "", "custom") else preset, "cell": cell,
                           "model_id": model_id, "name": name}
    req.update(values)
    req["corpus"] = (f"upload:{upload['upload_id']}" if upload and upload.get("upload_id") else "") \
        if source == "upload" else builtin
    return req


def progress_bar(fraction: float, status: str) -> html.Div:
    pct = max(0.0, min(1.0, float(fraction or 0.0))) * 100
    return html.Div(
        [html.Div(style={"width": f"{pct:.1f}%", "height": "100%", "background": _STATUS_COLOURS.get(status, "#1976d2"),
                         "transition": "width 0.4s"}),
         html.Span(f"{pct:.0f}%", style={"position": "absolute", "left": "4px", "top": "0", "fontSize": "0.75em"})],
        className="jobs-progress", role="progressbar", **{"aria-valuenow": f"{pct:.0f}"},
        style={"position": "relative", "width": "140px", "height": "16px", "background": "#eee",
               "borderRadius": "3px", "overflow": "hidden"})


def _fmt_duration(seconds: Any) -> str:
    if seconds is None or seconds != seconds:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _latest_text(detail: dict[str, Any]) -> tuple[str, str, str]:
    latest = detail.get("latest") or {}
    if latest.get("stage") == "analyze" and latest.get("analysis_stage"):
        where = f"analysis: {latest['analysis_stage']}"
    elif latest.get("epoch"):
        where = f"epoch {latest['epoch']}/{latest.get('epochs')}, step {latest.get('step')}/{latest.get('steps')}"
    else:
        where = ""
    loss = f"{latest['loss']:.3f}" if isinstance(latest.get("loss"), (int, float)) else ""
    tps = f"{latest['tokens_per_s']:,.0f}" if isinstance(latest.get("tokens_per_s"), (int, float)) else ""
    return where, loss, tps


def jobs_table(df) -> html.Table:
    """The job list as an HTML table (one row per job, newest first), with a Cancel button on active jobs."""
    import json
    head = html.Thead(html.Tr([html.Th(h) for h in ("Job", "Model", "Kind", "Status", "Progress", "Where", "Loss",
                                                    "Tokens/s", "Duration", "Submitted by", "Submitted", "Error",
                                                    "")]))
    rows = []
    for r in df.itertuples(index=False):
        try:
            detail = json.loads(r.detail) if isinstance(r.detail, str) else {}
        except ValueError:
            detail = {}
        where, loss, tps = _latest_text(detail)
        status = r.display_status
        active = r.status in ("queued", "running") and status != "cancelling"
        rows.append(html.Tr([
            html.Td(r.job_id), html.Td(r.model_id or ""), html.Td(r.kind),
            html.Td(status, className=f"jobs-status jobs-status-{status}",
                    style={"color": _STATUS_COLOURS.get(status), "fontWeight": "bold"}),
            html.Td(progress_bar(r.progress, status)), html.Td(where), html.Td(loss), html.Td(tps),
            html.Td(_fmt_duration(r.duration_s)), html.Td(r.submitted_by or ""),
            html.Td(str(r.submitted_at)[:19]),
            html.Td(r.error or "", style={"color": "#c62828", "maxWidth": "28em", "whiteSpace": "pre-wrap"}),
            html.Td(html.Button("Cancel", id={"type": IDS.cancel, "index": r.job_id}, n_clicks=0)
                    if active else ""),
        ], id=f"jobs-row-{r.job_id}"))
    if not rows:
        rows = [html.Tr(html.Td("No jobs yet: submit one above, or run `rnnvis jobs submit`.", colSpan=13))]
    return html.Table([head, html.Tbody(rows)], className="jobs-table",
                      style={"borderCollapse": "collapse", "width": "100%", "fontSize": "0.9em"})


def curve_figure(detail: dict[str, Any], title: str = "") -> go.Figure:
    """Training curve of one job (train and validation loss per epoch) from its detail JSON."""
    curve = sorted(detail.get("curve") or [], key=lambda p: p.get("epoch", 0))
    fig = go.Figure()
    epochs = [p.get("epoch") for p in curve]
    for key, label in (("train_loss", "train loss"), ("valid_loss", "validation loss")):
        fig.add_trace(go.Scatter(x=epochs, y=[p.get(key) for p in curve], mode="lines+markers", name=label))
    latest = detail.get("latest") or {}
    if latest.get("stage") == "train" and latest.get("epoch") and latest.get("steps"):
        x = latest["epoch"] - 1 + latest.get("step", 0) / latest["steps"]
        if not epochs or x > epochs[-1]:
            fig.add_trace(go.Scatter(x=[x], y=[latest.get("loss")], mode="markers", name="current batch loss",
                                     marker={"symbol": "x"}))
    fig.update_layout(title=title or None, xaxis_title="epoch", yaxis_title="loss (nats)", height=320,
                      margin={"l": 50, "r": 20, "t": 40 if title else 20, "b": 40}, uirevision="jobs-curve")
    return fig


def _errors_out(errors: dict[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    return {f: errors.get(f, "") for f in fields}


def _other_errors(errors: dict[str, str], fields: tuple[str, ...]) -> str:
    rest = {k: v for k, v in errors.items() if k not in fields}
    return "; ".join(f"{k}: {v}" if k != "form" else v for k, v in rest.items())


# --------------------------------------------------------------------------- layout


def _labelled(label: str, control, field: str) -> html.Div:
    return html.Div([html.Label(label, htmlFor=getattr(control, "id", None)), control,
                     html.Div(id=IDS.error(field), className="jobs-field-error", style=_ERR_STYLE)],
                    style={"display": "flex", "flexDirection": "column", "minWidth": "9em"})


def layout(**_: Any) -> html.Div:
    from models.config import PRESETS
    from models.corpora import BUILTIN
    defaults = preset_values("demo-lstm")
    preset_opts = [{"label": f"{n}: {p.description}", "value": n} for n, p in PRESETS.items()]
    preset_opts.append({"label": "custom (set every field)", "value": "custom"})
    inputs = [_labelled("Cell", dcc.Dropdown(id=IDS.field("cell"), options=["rnn", "gru", "lstm"],
                                             value=defaults["cell"], clearable=False), "cell")]
    inputs += [_labelled(label, dcc.Input(id=IDS.field(f), type="number", step=step, value=defaults[f],
                                          debounce=True), f) for f, label, step in FIELDS]
    form = html.Div([
        html.H3("New model"),
        _labelled("Preset", dcc.Dropdown(id=IDS.preset, options=preset_opts, value="demo-lstm", clearable=False),
                  "preset"),
        html.Div(inputs, style={"display": "flex", "flexWrap": "wrap", "gap": "0.8em"}),
        html.Div([
            html.Label("Corpus"),
            dcc.RadioItems(id=IDS.corpus_source, options=[{"label": "built-in", "value": "builtin"},
                                                          {"label": "upload", "value": "upload"}],
                           value="builtin", inline=True),
            dcc.Dropdown(id=IDS.corpus_builtin, options=list(BUILTIN), value=defaults["corpus"], clearable=False,
                         style={"maxWidth": "20em"}),
            html.Div([
                dcc.Dropdown(id=IDS.corpus_format, value=None, placeholder="format (detected from the name)",
                             options=[{"label": "PTB (train/valid/test .txt, or one file)", "value": "ptb"},
                                      {"label": "plain text", "value": "text"},
                                      {"label": "review CSV (text + label columns)", "value": "csv"},
                                      {"label": "Yelp JSON lines", "value": "yelp"}],
                             style={"maxWidth": "24em"}),
                dcc.Upload(id=IDS.corpus_upload, multiple=True, max_size=-1,
                           children=html.Div(["Drop corpus file(s) here or ", html.A("choose")]),
                           style={"border": "1px dashed #999", "padding": "0.6em", "maxWidth": "30em"}),
                html.Div(id=IDS.corpus_upload_status),
            ]),
            html.Div(id=IDS.error("corpus"), className="jobs-field-error", style=_ERR_STYLE),
        ]),
        html.Div([_labelled("Model id (optional)", dcc.Input(id=IDS.model_id, type="text", debounce=True),
                            "model_id"),
                  _labelled("Name (optional)", dcc.Input(id=IDS.name, type="text", debounce=True), "name")],
                 style={"display": "flex", "gap": "0.8em"}),
        html.Button("Train and analyse", id=IDS.submit, n_clicks=0),
        html.Div(id=IDS.banner, role="status", style={"margin": "0.5em 0"}),
    ])
    byom = html.Details([
        html.Summary("Bring your own model"),
        html.P("An RNNVis checkpoint, or torch.save(model.state_dict()) of an embedding + nn.RNN/GRU/LSTM + "
               "linear output layer together with its vocabulary (one word per line, in embedding-row order). "
               "It is analysed on the corpus chosen above (built-in or uploaded)."),
        dcc.Upload(id=IDS.byom_weights, children=html.Div(["Weights (.pt): drop or ", html.A("choose")]),
                   max_size=-1, style={"border": "1px dashed #999", "padding": "0.6em", "maxWidth": "30em"}),
        html.Div(id=IDS.byom_weights_status),
        html.Div(id=IDS.error("byom_weights"), style=_ERR_STYLE),
        dcc.Upload(id=IDS.byom_vocab, children=html.Div(["Vocabulary (state dicts only): drop or ", html.A("choose")]),
                   max_size=-1, style={"border": "1px dashed #999", "padding": "0.6em", "maxWidth": "30em"}),
        html.Div(id=IDS.byom_vocab_status),
        html.Div(id=IDS.error("byom_vocab"), style=_ERR_STYLE),
        html.Div(id=IDS.error("byom_corpus"), style=_ERR_STYLE),
        _labelled("Model id (optional)", dcc.Input(id=IDS.byom_model_id, type="text", debounce=True), "byom_model_id"),
        html.Button("Import and analyse", id=IDS.byom_submit, n_clicks=0),
        html.Div(id=IDS.byom_msg, role="status"),
    ])
    return html.Div([
        html.H2("Jobs"),
        dcc.Interval(id=IDS.interval, interval=ACTIVE_POLL_MS, n_intervals=0),
        dcc.Store(id=IDS.refresh),
        dcc.Store(id=IDS.corpus_upload_store),
        form,
        byom,
        html.H3("Jobs"),
        html.Div(id=IDS.cancel_msg, role="status"),
        html.Div(id=IDS.table),
        html.H3("Training curve"),
        dcc.Dropdown(id=IDS.curve_job, placeholder="job", style={"maxWidth": "30em"}),
        dcc.Graph(id=IDS.curve, figure=curve_figure({})),
    ], className="jobs-page")


# --------------------------------------------------------------------------- callbacks


@callback([Output(IDS.field("cell"), "value")] + [Output(IDS.field(f), "value") for f, _, _ in FIELDS]
          + [Output(IDS.corpus_builtin, "value")],
          Input(IDS.preset, "value"), prevent_initial_call=True)
def fill_from_preset(preset: str | None):
    """Choosing a preset fills the form with its values (custom: the defaults)."""
    v = preset_values(preset)
    return [v["cell"]] + [v[f] for f, _, _ in FIELDS] + [v["corpus"] if preset != "custom" else "brown"]


@callback(Output(IDS.corpus_upload_store, "data"), Output(IDS.corpus_upload_status, "children"),
          Output(IDS.corpus_source, "value"),
          Input(IDS.corpus_upload, "contents"), State(IDS.corpus_upload, "filename"),
          State(IDS.corpus_format, "value"), prevent_initial_call=True)
def upload_corpus(contents, filenames, fmt):
    """Check and keep an uploaded corpus; refuse empty, binary, oversized or malformed files with a message."""
    from analytics import jobs
    js = _job_settings()
    try:
        files = [decode_upload(c, n, js.max_upload_bytes, "corpus")
                 for c, n in zip(_as_list(contents), _as_list(filenames))]
        info = jobs.save_corpus_upload(_settings().store, files, fmt, max_bytes=js.max_upload_bytes)
    except jobs.JobValidationError as e:
        return None, html.Span(_other_errors(e.errors, ()), style={"color": "#c62828"}), "upload"
    return ({"upload_id": info.upload_id, "task": info.task, "name": info.name},
            html.Span(f"uploaded {info.summary} ({info.fmt})", style={"color": "#2e7d32"}), "upload")


@callback(output=dict(banner=Output(IDS.banner, "children"), refresh=Output(IDS.refresh, "data"),
                      errors={f: Output(IDS.error(f), "children") for f in ERROR_FIELDS}),
          inputs=dict(n_clicks=Input(IDS.submit, "n_clicks")),
          state=dict(preset=State(IDS.preset, "value"), cell=State(IDS.field("cell"), "value"),
                     values={f: State(IDS.field(f), "value") for f, _, _ in FIELDS},
                     source=State(IDS.corpus_source, "value"), builtin=State(IDS.corpus_builtin, "value"),
                     upload=State(IDS.corpus_upload_store, "data"), model_id=State(IDS.model_id, "value"),
                     name=State(IDS.name, "value")),
          prevent_initial_call=True)
def submit_job(n_clicks, preset, cell, values, source, builtin, upload, model_id, name):
    """Validate the form and queue the job; field-level messages when refused, a clear error if the queue is down.

    The fields arrive grouped (``values``: field name -> value), as Dash 4 passes keyword groupings; a list of
    States would be flattened into separate arguments.
    """
    from analytics.jobs import JobValidationError
    from workers import client
    missing = {f: "enter a number" for f, v in values.items() if v is None}
    request = build_request(preset, cell, {f: v for f, v in values.items() if v is not None}, source, builtin,
                            upload, model_id, name)
    try:
        if missing:
            raise JobValidationError(missing)
        rec = client.submit_train(_settings(), request, submitted_by=current_user(), job_settings=_job_settings())
    except JobValidationError as e:
        other = _other_errors(e.errors, ERROR_FIELDS)
        banner = html.Div("Not submitted: fix the fields marked below." + (f" {other}" if other else ""),
                          className="jobs-refused", style={"color": "#c62828"})
        return {"banner": banner, "refresh": no_update, "errors": _errors_out(e.errors, ERROR_FIELDS)}
    except client.BrokerUnavailable as e:
        return {"banner": html.Div(str(e), className="jobs-broker-down", style={"color": "#c62828"}),
                "refresh": no_update, "errors": _errors_out({}, ERROR_FIELDS)}
    banner = html.Div(f"Queued job {rec.job_id}: model {rec.model_id}.", className="jobs-queued",
                      style={"color": "#2e7d32"})
    return {"banner": banner, "refresh": rec.job_id, "errors": _errors_out({}, ERROR_FIELDS)}


@callback(Output(IDS.byom_weights_status, "children"), Input(IDS.byom_weights, "filename"),
          prevent_initial_call=True)
def show_weights_name(name):
    return f"weights: {name}" if name else ""


@callback(Output(IDS.byom_vocab_status, "children"), Input(IDS.byom_vocab, "filename"), prevent_initial_call=True)
def show_vocab_name(name):
    return f"vocabulary: {name}" if name else ""


@callback(Output(IDS.byom_msg, "children"), Output(IDS.refresh, "data", allow_duplicate=True),
          Output(IDS.error("byom_weights"), "children"), Output(IDS.error("byom_vocab"), "children"),
          Output(IDS.error("byom_corpus"), "children"), Output(IDS.error("byom_model_id"), "children"),
          Input(IDS.byom_submit, "n_clicks"),
          State(IDS.byom_weights, "contents"), State(IDS.byom_weights, "filename"),
          State(IDS.byom_vocab, "contents"), State(IDS.byom_vocab, "filename"),
          State(IDS.corpus_source, "value"), State(IDS.corpus_builtin, "value"),
          State(IDS.corpus_upload_store, "data"), State(IDS.byom_model_id, "value"),
          prevent_initial_call=True)
def submit_import(n_clicks, weights, weights_name, vocab, vocab_name, source, builtin, upload, model_id):
    """Check an uploaded model and queue its import + analysis."""
    from analytics import jobs
    from workers import client
    s, js = _settings(), _job_settings()
    try:
        w = decode_upload(weights, weights_name, js.max_upload_bytes, "weights")
        v = decode_upload(vocab, vocab_name, js.max_upload_bytes, "vocab") if vocab else None
        info = jobs.save_model_upload(s.store, w, v, max_bytes=js.max_upload_bytes)
        corpus = build_request(None, None, {}, source, builtin, upload, None, None)["corpus"]
        rec = client.submit_import(s, {"model_upload": info.upload_id, "corpus": corpus, "model_id": model_id},
                                   submitted_by=current_user(), job_settings=js)
    except jobs.JobValidationError as e:
        return ["Not submitted." + (" " + _other_errors(e.errors, BYOM_ERROR_FIELDS)
                                    if _other_errors(e.errors, BYOM_ERROR_FIELDS) else ""), no_update] \
            + list(_errors_out(e.errors, BYOM_ERROR_FIELDS).values())
    except client.BrokerUnavailable as e:
        return [str(e), no_update, "", "", "", ""]
    return [f"Queued job {rec.job_id}: import of {info.summary} as {rec.model_id}.", rec.job_id, "", "", "", ""]


@callback(Output(IDS.cancel_msg, "children"), Output(IDS.refresh, "data", allow_duplicate=True),
          Input({"type": IDS.cancel, "index": ALL}, "n_clicks"), prevent_initial_call=True)
def cancel_job(clicks):
    """Cancel the job whose button was pressed."""
    from analytics.jobs import JobError
    from workers import client
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(c for c in clicks or []):
        return no_update, no_update
    job_id = trigger["index"]
    try:
        state = client.cancel(_settings(), job_id, by=current_user(), job_settings=_job_settings())
    except JobError as e:
        return str(e), no_update
    return f"Job {job_id}: {state}.", f"cancel:{job_id}"


@callback(Output(IDS.table, "children"), Output(IDS.interval, "interval"), Output(IDS.curve_job, "options"),
          Output(IDS.curve_job, "value"),
          Input(IDS.interval, "n_intervals"), Input(IDS.refresh, "data"), State(IDS.curve_job, "value"))
def refresh_jobs(_n, _refresh, selected):
    """Re-read the jobs view: the table, how soon to poll again, and the jobs that have a curve."""
    from analytics import jobs
    js = _job_settings()
    df = jobs.list_jobs(_settings().store, limit=100, stale_after_s=js.stale_after_s)
    active = bool(df["status"].isin(["queued", "running"]).any())
    options = [{"label": f"{r.job_id} ({r.model_id}, {r.display_status})", "value": r.job_id}
               for r in df.itertuples(index=False) if r.kind in ("train", "import")]
    if selected not in {o["value"] for o in options}:
        running = df[df["status"] == "running"]
        selected = (running["job_id"].iloc[0] if len(running) else options[0]["value"] if options else None)
    return jobs_table(df), ACTIVE_POLL_MS if active else IDLE_POLL_MS, options, selected


@callback(Output(IDS.curve, "figure"), Input(IDS.curve_job, "value"), Input(IDS.interval, "n_intervals"))
def show_curve(job_id, _n):
    """The selected job's training curve, growing as epochs finish."""
    from analytics import jobs
    if not job_id:
        return curve_figure({})
    try:
        rec = jobs.read_job(_settings().store, job_id)
    except (jobs.UnknownJobError, ValueError):
        return curve_figure({})
    return curve_figure(rec.detail, f"{rec.model_id} ({rec.status})")
