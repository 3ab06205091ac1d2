"""Jobs: train a model (a preset or custom settings, a built-in or uploaded corpus), bring your own model, and
follow every job live (status, progress, training curve, duration, who, error; cancel).

Layout and wiring only; the logic is in :mod:`app.logic.jobs` and :mod:`app.logic.jobs_view`, the ids in
:mod:`app.ids`. Everything shown is read from the store's ``jobs`` view, so the page works with the broker
down; submitting goes through :mod:`workers.client`, which checks the request first. Submitting, uploading
and cancelling need the member role (:data:`app.ids.ACTION_ROLES`; the logic checks it too).
"""
from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from app import context, ids
from app.hosted import auth
from app.logic import jobs as logic
from app.logic import jobs_view as view
from models.config import ConfigError
from workers.planning import FORM_FIELDS, TEXT_FIELDS
from workers.settings import JobSettings

dash.register_page(__name__, path="/jobs", name="Jobs", title="RNNVis · Jobs", order=3)

UPLOAD_STYLE = {"border": "1px dashed #90a4ae", "borderRadius": "6px", "padding": "10px", "cursor": "pointer"}


def _job_settings() -> JobSettings:
    return JobSettings.from_env()


def _field(name: str, control: Any, label: str | None = None, title: str | None = None) -> html.Div:
    return html.Div([html.Label(label or logic.label(name), htmlFor=getattr(control, "id", None)), control,
                     html.Div(id=ids.jobs_error(name), className="jobs-field-error")],
                    className="jobs-field", title=title)


def _setting(name: str, value: Any) -> html.Div:
    f = FORM_FIELDS[name]
    if f.choices:
        control = dcc.Dropdown(id=ids.jobs_field(name), options=list(f.choices), value=value, clearable=False)
    else:
        control = dcc.Input(id=ids.jobs_field(name), type="number", step="any", value=value,
                            placeholder=logic.hint(name), className="jobs-number")
    return _field(name, control, title=logic.hint(name))


def _upload(cid: str, text: str, multiple: bool = False) -> dcc.Upload:
    return dcc.Upload(id=cid, multiple=multiple, max_size=-1, style=UPLOAD_STYLE,
                      children=html.Div([text, " ", html.A("choose")]))


def _corpus_picker(v: dict[str, Any]) -> html.Div:
    """Built-in corpus or an upload (new, or one of the user's earlier ones)."""
    from models.corpora import BUILTIN

    return html.Div([
        html.Label("Corpus"),
        dcc.RadioItems(id=ids.JOBS_CORPUS_SOURCE, options=[{"label": " built-in", "value": "builtin"},
                                                           {"label": " upload", "value": "upload"}],
                       value="builtin", inline=True, className="jobs-radio"),
        html.Div([dcc.Dropdown(id=ids.JOBS_CORPUS_BUILTIN, options=list(BUILTIN), value=v["corpus"],
                               clearable=False, className="jobs-corpus-builtin"),
                  dcc.Dropdown(id=ids.JOBS_CORPUS_FORMAT, value=None, placeholder="upload format (from the name)",
                               options=[{"label": t, "value": k} for k, t in logic.CORPUS_FORMATS],
                               className="jobs-corpus-format")], className="jobs-row"),
        _upload(ids.JOBS_CORPUS_UPLOAD, "Drop corpus file(s) here (three for PTB) or", multiple=True),
        dcc.Dropdown(id=ids.JOBS_CORPUS_MINE, options=logic.my_corpus_uploads(context.settings(),
                                                                              auth.current_user()),
                     placeholder="or one of your earlier uploads", className="jobs-corpus-mine"),
        html.Div(id=ids.JOBS_CORPUS_UPLOAD_STATUS, className="small"),
        html.Div(id=ids.jobs_error("corpus"), className="jobs-field-error"),
    ], className="jobs-corpus")


def _training_form() -> html.Section:
    """The new-model form: preset, settings, corpus, ids and the submit button."""
    from models.config import PRESETS

    v = logic.preset_values(logic.DEFAULT_PRESET)
    presets = [{"label": f"{n}: {p.description}", "value": n} for n, p in PRESETS.items()]
    presets.append({"label": "custom (set every field)", "value": "custom"})
    return html.Section([
        html.Div([html.H4("New model"), html.Span("trained, then analysed; it appears in every view when done",
                                                  className="muted small")], className="card-head"),
        _field("preset", dcc.Dropdown(id=ids.JOBS_PRESET, options=presets, value=logic.DEFAULT_PRESET,
                                      clearable=False), "Preset"),
        html.Div([_setting(n, v[n]) for n in logic.MAIN_FIELDS], className="jobs-grid"),
        html.Details([html.Summary("More settings"),
                      html.Div([_setting(n, v[n]) for n in logic.ADVANCED_FIELDS], className="jobs-grid")],
                     className="jobs-more"),
        _corpus_picker(v),
        html.Div([_field("model_id", dcc.Input(id=ids.JOBS_MODEL_ID, type="text", placeholder="from the preset",
                                                  maxLength=TEXT_FIELDS["model_id"]),
                         "Model id (optional)"),
                  _field("name", dcc.Input(id=ids.JOBS_NAME, type="text", maxLength=TEXT_FIELDS["name"]),
                         "Name (optional)")], className="jobs-grid"),
        html.Div(html.Button("Train and analyse", id=ids.JOBS_SUBMIT, n_clicks=0, className="btn btn-primary",
                                     **auth.gate("member", "train models")),
                 className="button-row"),
        html.Div(id=ids.JOBS_BANNER),
    ], className="card jobs-form")


def _import_form() -> html.Section:
    """Bring your own model: weights, vocabulary, id."""
    return html.Section([
        html.Details([
            html.Summary(html.H4("Bring your own model", style={"display": "inline"})),
            html.P("An RNNVis checkpoint, or torch.save(model.state_dict()) of an embedding + nn.RNN/GRU/LSTM + "
                   "linear output layer with its vocabulary (one word per line, in embedding-row order). It is "
                   "evaluated and analysed on the corpus chosen above.", className="muted small"),
            _upload(ids.JOBS_BYOM_WEIGHTS, "Weights (.pt): drop or"),
            html.Div(id=ids.JOBS_BYOM_WEIGHTS_STATUS, className="small"),
            html.Div(id=ids.jobs_error("byom_weights"), className="jobs-field-error"),
            _upload(ids.JOBS_BYOM_VOCAB, "Vocabulary (state dicts only): drop or"),
            html.Div(id=ids.JOBS_BYOM_VOCAB_STATUS, className="small"),
            html.Div(id=ids.jobs_error("byom_vocab"), className="jobs-field-error"),
            html.Div(id=ids.jobs_error("byom_corpus"), className="jobs-field-error"),
            _field("byom_model_id", dcc.Input(id=ids.JOBS_BYOM_MODEL_ID, type="text",
                                              maxLength=TEXT_FIELDS["model_id"]), "Model id (optional)"),
            html.Div(html.Button("Import and analyse", id=ids.JOBS_BYOM_SUBMIT, n_clicks=0, className="btn",
                                         **auth.gate("member", "import models")),
                     className="button-row"),
            html.Div(id=ids.JOBS_BYOM_MSG),
        ], id="jobs-byom"),
    ], className="card")


def layout(**_query: Any) -> html.Div:
    form, byom = _training_form(), _import_form()
    jobs = html.Section([
        html.Div([html.H4("Jobs"), html.Span("newest first; updates every second while one runs",
                                             className="muted small")], className="card-head"),
        html.Div(id=ids.JOBS_CANCEL_MSG, role="status"),
        html.Div(id=ids.JOBS_TABLE, className="table-wrap"),
    ], className="card")
    curve = html.Section([
        html.Div([html.H4("Training curve"),
                  dcc.Dropdown(id=ids.JOBS_CURVE_JOB, placeholder="job", className="jobs-curve-pick")],
                 className="card-head"),
        html.Div(dcc.Graph(id=ids.JOBS_CURVE, config={"displaylogo": False}), id=ids.JOBS_CURVE_BOX,
                 style={"display": "none"}),
    ], className="card")
    return html.Div([
        dcc.Interval(id=ids.JOBS_INTERVAL, interval=view.ACTIVE_POLL_MS, n_intervals=0),
        dcc.Store(id=ids.JOBS_REFRESH), dcc.Store(id=ids.JOBS_CORPUS_UPLOADED),
        html.Main([form, byom, jobs, curve], className="main main-wide"),
    ], className="page page-jobs")




# --------------------------------------------------------------------------- callbacks


@callback(output=dict(values={f: Output(ids.jobs_field(f), "value") for f in logic.FIELDS},
                      corpus=Output(ids.JOBS_CORPUS_BUILTIN, "value")),
          inputs=dict(preset=Input(ids.JOBS_PRESET, "value")), prevent_initial_call=True)
def fill_from_preset(preset):
    """Choosing a preset fills the form with its settings and its corpus (an unknown one changes nothing)."""
    try:
        v = logic.preset_values(preset)
    except ConfigError:
        raise PreventUpdate from None
    return {"values": {f: v[f] for f in logic.FIELDS}, "corpus": v["corpus"]}


@callback(Output(ids.JOBS_CORPUS_UPLOADED, "data"), Output(ids.JOBS_CORPUS_UPLOAD_STATUS, "children"),
          Output(ids.JOBS_CORPUS_SOURCE, "value"),
          Input(ids.JOBS_CORPUS_UPLOAD, "contents"), State(ids.JOBS_CORPUS_UPLOAD, "filename"),
          State(ids.JOBS_CORPUS_FORMAT, "value"), prevent_initial_call=True)
def upload_corpus(contents, filenames, fmt):
    """Check and keep an uploaded corpus; an empty, binary, oversized or malformed one is refused with a message."""
    return logic.upload_corpus(context.settings(), _job_settings(), auth.current_user(), contents, filenames, fmt)


@callback(Output(ids.JOBS_CORPUS_UPLOADED, "data", allow_duplicate=True),
          Output(ids.JOBS_CORPUS_UPLOAD_STATUS, "children", allow_duplicate=True),
          Output(ids.JOBS_CORPUS_SOURCE, "value", allow_duplicate=True),
          Input(ids.JOBS_CORPUS_MINE, "value"), prevent_initial_call=True)
def reuse_corpus(upload_id):
    """Use one of your earlier corpus uploads (only your own are listed, and only your own are accepted)."""
    if not upload_id:
        return no_update, no_update, no_update
    return logic.reuse_corpus_upload(context.settings(), auth.current_user(), upload_id)


@callback(output=dict(banner=Output(ids.JOBS_BANNER, "children"), refresh=Output(ids.JOBS_REFRESH, "data"),
                      errors={f: Output(ids.jobs_error(f), "children") for f in logic.ERROR_FIELDS}),
          inputs=dict(n_clicks=Input(ids.JOBS_SUBMIT, "n_clicks")),
          state=dict(preset=State(ids.JOBS_PRESET, "value"),
                     values={f: State(ids.jobs_field(f), "value") for f in logic.FIELDS},
                     source=State(ids.JOBS_CORPUS_SOURCE, "value"), builtin=State(ids.JOBS_CORPUS_BUILTIN, "value"),
                     upload=State(ids.JOBS_CORPUS_UPLOADED, "data"), model_id=State(ids.JOBS_MODEL_ID, "value"),
                     name=State(ids.JOBS_NAME, "value")),
          prevent_initial_call=True)
def submit_job(n_clicks, preset, values, source, builtin, upload, model_id, name):
    """Check the form and queue the job. The fields come grouped by name (``values``): Dash 4 would flatten a
    list of States into separate arguments."""
    out = logic.submit_train(context.settings(), _job_settings(), auth.current_user(), preset, values, source,
                             builtin, upload, model_id, name)
    return {"banner": out.banner, "refresh": out.job_id if out.queued else no_update,
            "errors": {f: out.errors.get(f, "") for f in logic.ERROR_FIELDS}}


@callback(Output(ids.JOBS_BYOM_WEIGHTS_STATUS, "children"), Input(ids.JOBS_BYOM_WEIGHTS, "filename"),
          prevent_initial_call=True)
def show_weights_name(name):
    return f"weights: {name}" if name else ""


@callback(Output(ids.JOBS_BYOM_VOCAB_STATUS, "children"), Input(ids.JOBS_BYOM_VOCAB, "filename"),
          prevent_initial_call=True)
def show_vocab_name(name):
    return f"vocabulary: {name}" if name else ""


@callback(output=dict(msg=Output(ids.JOBS_BYOM_MSG, "children"),
                      refresh=Output(ids.JOBS_REFRESH, "data", allow_duplicate=True),
                      errors={f: Output(ids.jobs_error(f), "children") for f in logic.BYOM_ERROR_FIELDS.values()}),
          inputs=dict(n_clicks=Input(ids.JOBS_BYOM_SUBMIT, "n_clicks")),
          state=dict(weights=State(ids.JOBS_BYOM_WEIGHTS, "contents"),
                     weights_name=State(ids.JOBS_BYOM_WEIGHTS, "filename"),
                     vocab=State(ids.JOBS_BYOM_VOCAB, "contents"), vocab_name=State(ids.JOBS_BYOM_VOCAB, "filename"),
                     source=State(ids.JOBS_CORPUS_SOURCE, "value"), builtin=State(ids.JOBS_CORPUS_BUILTIN, "value"),
                     upload=State(ids.JOBS_CORPUS_UPLOADED, "data"), model_id=State(ids.JOBS_BYOM_MODEL_ID, "value")),
          prevent_initial_call=True)
def submit_import(n_clicks, weights, weights_name, vocab, vocab_name, source, builtin, upload, model_id):
    """Check an uploaded model and queue its import and analysis."""
    out = logic.submit_import(context.settings(), _job_settings(), auth.current_user(), weights, weights_name, vocab,
                              vocab_name, source, builtin, upload, model_id)
    return {"msg": out.banner, "refresh": out.job_id if out.queued else no_update,
            "errors": {f: out.errors.get(f, "") for f in logic.BYOM_ERROR_FIELDS.values()}}


@callback(Output(ids.JOBS_CANCEL_MSG, "children"), Output(ids.JOBS_REFRESH, "data", allow_duplicate=True),
          Input({"type": ids.JOBS_CANCEL, "index": ALL}, "n_clicks"), prevent_initial_call=True)
def cancel_job(clicks):
    """Cancel the job whose button was pressed (a table refresh that redraws the buttons presses none)."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(clicks or []):
        return no_update, no_update
    msg, refresh = logic.cancel(context.settings(), _job_settings(), auth.current_user(), str(trigger["index"]))
    return msg, refresh if refresh else no_update


@callback(Output(ids.JOBS_TABLE, "children"), Output(ids.JOBS_INTERVAL, "interval"),
          Output(ids.JOBS_CURVE_JOB, "options"), Output(ids.JOBS_CURVE_JOB, "value"),
          Input(ids.JOBS_INTERVAL, "n_intervals"), Input(ids.JOBS_REFRESH, "data"), State(ids.JOBS_CURVE_JOB, "value"))
def refresh_jobs(_n, _refresh, selected):
    """Re-read the jobs view: the table, how soon to poll again, and the jobs that have a curve."""
    return view.job_list(context.settings(), _job_settings(), selected)


@callback(Output(ids.JOBS_CURVE, "figure"), Output(ids.JOBS_CURVE_BOX, "style"),
          Input(ids.JOBS_CURVE_JOB, "value"), Input(ids.JOBS_INTERVAL, "n_intervals"))
def show_curve(job_id, _n):
    """The picked job's training curve, growing as epochs finish (hidden until a job is picked)."""
    return view.job_curve(logic.read_curve_job(context.settings(), job_id))
