"""Models: every model with its architecture, corpus, scores and training curves."""
from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from app import context, ids, notes_panel
from app.controls import GRAPH_CONFIG
from app.logic import models as logic
from app.logic import notes as notes_logic
from app.logic.common import error_alert
from app.logic.probes import models_probes

dash.register_page(__name__, path="/", name="Models", title="RNNVis · Models", order=0)  # /models: app.server


def layout(**_query) -> html.Div:
    table, options, picked, probes = html.Div(), [], [], html.Div()
    try:
        table, options, picked = logic.models_page(context.reader())
        probes = models_probes(context.reader())
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        table = error_alert(e)
    return html.Div([
        html.Main([
            html.Section([html.Div([html.H4("Models"),
                                    html.Span("perplexity for language models, accuracy for classifiers",
                                              className="muted small")], className="card-head"),
                          html.Div(table, id=ids.MODELS_TABLE, className="table-wrap")], className="card"),
            html.Div(id=ids.MODELS_ALERT),
            html.Section([html.Div([html.H4("Training curves"),
                                    dcc.Checklist(id=ids.MODELS_CURVE_PICK, options=options, value=picked,
                                                  inline=True, className="checklist inline")],
                                   className="card-head"),
                          dcc.Graph(id=ids.MODELS_CURVES, config=GRAPH_CONFIG)], className="card"),
            html.Section([html.Div([html.H4("POS probes"),
                                    html.Span("a linear probe per layer and state predicts each token's gold POS tag; "
                                              "beside it the control task, the untrained model and the majority tag "
                                              "(docs/probes.md)", className="muted small")], className="card-head"),
                          html.Div(probes, id=ids.MODELS_PROBES, className="table-wrap")], className="card"),
            _notes(options),
        ], className="main main-wide"),
    ], className="page page-models")


def _notes(options: list[dict]) -> html.Section:
    """The team's notes on a model (all of them: on the model, its clusters, its units), its form, the search."""
    first = options[0]["value"] if options else None
    pick = dcc.Dropdown(id=ids.NOTES_MODEL, options=options, value=first, clearable=False,
                        className="notes-model-pick")
    return notes_panel.panel({"model_id": first} if first else None, "Team notes", extra=pick)


@callback(Output(ids.NOTES_TARGET, "data"), Output(ids.NOTES_KIND, "options"), Output(ids.NOTES_KIND, "value"),
          Input(ids.NOTES_MODEL, "value"), prevent_initial_call=True)
def _on_note_model(model):
    target = {"model_id": model} if model else None
    options = notes_logic.kind_options(notes_logic.target_of(target))
    return target, options, options[0]["value"] if options else None


@callback(Output(ids.MODELS_CURVES, "figure"), Input(ids.MODELS_CURVE_PICK, "value"))
def _on_pick(picked):
    return logic.curves(context.reader(), picked)
