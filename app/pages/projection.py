"""Projection: the co-clustered words and the units on 2-D maps (PCA or t-SNE, precomputed by the analysis),
linked with Explore through the selection, and two models side by side with their matched units joined.

Layout and wiring only; the logic is in :mod:`app.logic.projection`.
"""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from app import context, ids
from app.controls import GRAPH_CONFIG, control, model_options
from app.logic import projection as logic
from app.logic.common import analysed_models, corrections_alert, default_model, error_alert, picked_notes
from app.reader import MAP_STATES
from app.urlstate import K_MAX, K_MIN, from_query

dash.register_page(__name__, path="/projection", name="Projection", title="RNNVis · Projection", order=1.5)


def layout(**query) -> html.Div:
    vs = from_query(query)
    alert: list = []
    model_opts: list = []
    layers: list = []
    states: list = []
    layers_b: list = []
    layer = state = layer_b = None
    model = None
    try:
        r = context.reader()
        model_opts = analysed_models(r)
        model = default_model(r, vs.model)
        if vs.bad_model:
            alert = [error_alert(ValueError(f"{vs.bad_model!r} is not a model id"), r, logic.PAGE)]
        if model:
            layers, layer, states, state, ctl_alert = logic.controls_for_model(r, model, vs.layer, vs.state)
            alert = alert or ctl_alert
            if layer is not None:   # what the link asked for and the model lacks: said in one line
                alert = alert + corrections_alert(list(vs.notes) + picked_notes(
                    r, model, (vs.layer, vs.state), (layer, state), MAP_STATES))
        layers_b, layer_b = logic.layer_b_options(r, vs.model_b, vs.layer_b)
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        alert = [error_alert(e, None, logic.PAGE)]
    model_opts = model_options(model_opts, model)
    panel = html.Aside([
        html.H3("Projection"),
        control("Model", dcc.Dropdown(id=ids.PJ_MODEL, options=model_opts, value=model, clearable=False)),
        html.Div([
            control("Layer", dcc.Dropdown(id=ids.PJ_LAYER, options=layers, value=layer, clearable=False)),
            control("State", dcc.Dropdown(id=ids.PJ_STATE, options=states, value=state, clearable=False)),
        ], className="control-row"),
        control("Map", dcc.RadioItems(id=ids.PJ_METHOD, options=[{"label": " t-SNE", "value": "tsne"},
                                                                  {"label": " PCA", "value": "pca"}],
                                      value=vs.method or "tsne", inline=True),
                "both are precomputed by the analysis (scikit-learn, fixed seed)"),
        control("Colour words by", dcc.RadioItems(id=ids.PJ_COLOR, options=[
            {"label": " POS", "value": "pos"}, {"label": " word cluster", "value": "cluster"}],
            value=vs.color or "pos", inline=True)),
        control("Clusters k", dcc.Slider(id=ids.PJ_K, min=K_MIN, max=K_MAX, step=1, value=vs.k,
                                         marks={i: str(i) for i in (2, 5, 10, 15, 20)}),
                "the co-clustering whose word and unit clusters colour the maps"),
        control("Drag to", dcc.RadioItems(id=ids.PJ_DRAG, options=[
            {"label": " lasso", "value": "lasso"}, {"label": " box", "value": "select"},
            {"label": " zoom", "value": "zoom"}, {"label": " pan", "value": "pan"}], value="lasso", inline=True),
                "lasso or box: select the points inside (shift adds); double-click clears"),
        html.Hr(),
        html.H4("Selection"),
        html.P("Click a point to add or remove it; drag a lasso or a box to select many.", className="muted small"),
        html.Div([html.Button("Clear", id=ids.PJ_CLEAR, n_clicks=0, className="btn")], className="button-row"),
        dcc.Link("Open this view in Explore →", id=ids.PJ_EXPLORE_LINK, href=logic.EXPLORE, className="explore-link"),
        html.Hr(),
        html.H4("Compare"),
        control("Side by side with", dcc.Dropdown(id=ids.PJ_MODEL_B, options=model_opts, value=vs.model_b,
                                                  clearable=True, placeholder="another model (optional)")),
        control("Its layer", dcc.Dropdown(id=ids.PJ_LAYER_B, options=layers_b, value=layer_b, clearable=False)),
        html.P("Units are matched as on Compare (correlation of the responses over shared words, Hungarian "
               "matching); matched units are joined, selected words joined to themselves.", className="muted small"),
    ], className="panel")
    main = html.Main([
        html.Div(alert, id=ids.PJ_ALERT),
        html.Div(id=ids.PJ_SUMMARY, className="summary-line"),
        html.Section([
            html.Div([html.H4("Words"), html.Span("placed by their response vectors s(w) over the units",
                                                  className="muted small")], className="card-head"),
            dcc.Loading(dcc.Graph(id=ids.PJ_WORDS, config=GRAPH_CONFIG), type="circle", delay_show=300),
        ], className="card"),
        html.Section([
            html.Div([html.H4("Units"), html.Span("placed by their response profiles over the words",
                                                  className="muted small")], className="card-head"),
            dcc.Loading(dcc.Graph(id=ids.PJ_UNITS, config=GRAPH_CONFIG), type="circle", delay_show=300),
        ], className="card"),
    ], className="main")
    return html.Div([
        dcc.Location(id=ids.PJ_URL, refresh=False),
        dcc.Store(id=ids.PJ_SELECTION, data=logic.selection_from_url(vs)),
        panel, main,
    ], className="page page-projection")


@callback(Output(ids.PJ_LAYER, "options"), Output(ids.PJ_LAYER, "value"), Output(ids.PJ_STATE, "options"),
          Output(ids.PJ_STATE, "value"), Output(ids.PJ_ALERT, "children"),
          Input(ids.PJ_MODEL, "value"), State(ids.PJ_LAYER, "value"), State(ids.PJ_STATE, "value"),
          prevent_initial_call=True)
def _on_model(model, layer, state):
    return logic.controls_for_model(context.reader(), model, layer, state)


@callback(Output(ids.PJ_LAYER_B, "options"), Output(ids.PJ_LAYER_B, "value"),
          Input(ids.PJ_MODEL_B, "value"), State(ids.PJ_LAYER_B, "value"), prevent_initial_call=True)
def _on_model_b(model_b, layer_b):
    return logic.layer_b_options(context.reader(), model_b, layer_b)


@callback(Output(ids.PJ_WORDS, "figure"), Output(ids.PJ_UNITS, "figure"), Output(ids.PJ_SUMMARY, "children"),
          Input(ids.PJ_MODEL, "value"), Input(ids.PJ_LAYER, "value"), Input(ids.PJ_STATE, "value"),
          Input(ids.PJ_METHOD, "value"), Input(ids.PJ_K, "value"), Input(ids.PJ_COLOR, "value"),
          Input(ids.PJ_SELECTION, "data"), Input(ids.PJ_DRAG, "value"), Input(ids.PJ_MODEL_B, "value"),
          Input(ids.PJ_LAYER_B, "value"))
def _on_view(model, layer, state, method, k, color, selection, drag, model_b, layer_b):
    return logic.map_view(context.reader(), model, layer, state, method, k, color, selection, drag, model_b, layer_b)


@callback(Output(ids.PJ_SELECTION, "data"),
          Input(ids.PJ_WORDS, "selectedData"), Input(ids.PJ_WORDS, "clickData"), Input(ids.PJ_UNITS, "selectedData"),
          Input(ids.PJ_UNITS, "clickData"), Input(ids.PJ_CLEAR, "n_clicks"), State(ids.PJ_SELECTION, "data"),
          State(ids.PJ_MODEL, "value"), State(ids.PJ_LAYER, "value"), State(ids.PJ_STATE, "value"),
          State(ids.PJ_MODEL_B, "value"), State(ids.PJ_LAYER_B, "value"), prevent_initial_call=True)
def _on_select(words_sel, words_click, units_sel, units_click, _clear, selection, model, layer, state, model_b,
               layer_b):
    tid = dash.ctx.triggered_id
    prop = (dash.ctx.triggered[0]["prop_id"].rsplit(".", 1)[-1] if dash.ctx.triggered else "")
    side = "words" if tid == ids.PJ_WORDS else "units" if tid == ids.PJ_UNITS else None
    trigger = "clear" if side is None else f"{side}-{'click' if prop == 'clickData' else 'select'}"
    freq, b_to_a = logic.selection_inputs(context.reader(), model, layer, state, model_b, layer_b)
    return logic.handle_selection(trigger, words_sel, words_click, units_sel, units_click, selection, freq, b_to_a)


@callback(Output(ids.PJ_URL, "search"), Output(ids.PJ_EXPLORE_LINK, "href"), Output(ids.PJ_EXPLORE_LINK, "children"),
          Input(ids.PJ_MODEL, "value"), Input(ids.PJ_LAYER, "value"), Input(ids.PJ_STATE, "value"),
          Input(ids.PJ_K, "value"), Input(ids.PJ_METHOD, "value"), Input(ids.PJ_COLOR, "value"),
          Input(ids.PJ_SELECTION, "data"), Input(ids.PJ_MODEL_B, "value"), Input(ids.PJ_LAYER_B, "value"))
def _on_url(model, layer, state, k, method, color, selection, model_b, layer_b):
    href, text = logic.explore_link(model, layer, state, k, selection)
    return logic.url_search(model, layer, state, k, method, color, selection, model_b, layer_b), href, text
