"""Compare: two models or two layers side by side, driven by one control panel.

Layout and wiring only; the logic is in :mod:`app.logic.compare`.
"""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from app import context, ids
from app.controls import GRAPH_CONFIG, control, model_options
from app.logic import compare as logic
from app.logic.common import analysed_models, corrections_alert, error_alert
from app.logic.csv_export import send_csv
from app.logic.losses import losses_panel
from app.logic.probes import compare_probes
from app.urlstate import K_MAX, K_MIN, from_query

dash.register_page(__name__, path="/compare", name="Compare", title="RNNVis · Compare", order=2)


def layout(**query) -> html.Div:
    vs = from_query(query)
    model_opts: list = []
    d = {"a": None, "b": None, "layer_a": None, "layer_b": None, "state": "h", "k": vs.k, "nwords": vs.nwords,
         "word": None}
    ctl = ([], None, [], None, [], None, [])
    try:
        r = context.reader()
        model_opts = analysed_models(r)
        d = logic.defaults(r, vs)
        ctl = logic.controls(r, d["a"], d["b"], d["layer_a"], d["layer_b"], d["state"],
                             avoid_same=vs.layer_b is None)
        if ctl[1] is not None and not ctl[6]:   # what the link asked for and the models lack: said in one line
            ctl = (*ctl[:6], corrections_alert(logic.link_notes(r, vs, d, ctl)))
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        ctl = ([], None, [], None, [], None, [error_alert(e)])
    model_opts = model_options(model_opts, d["a"], d["b"])
    layer_opts_a, layer_a, layer_opts_b, layer_b, state_opts, state, alert = ctl
    panel = html.Aside([
        html.H3("Compare"),
        control("Model A", dcc.Dropdown(id=ids.CMP_MODEL_A, options=model_opts, value=d["a"], clearable=False)),
        control("Layer A", dcc.Dropdown(id=ids.CMP_LAYER_A, options=layer_opts_a, value=layer_a, clearable=False)),
        control("Model B", dcc.Dropdown(id=ids.CMP_MODEL_B, options=model_opts, value=d["b"], clearable=False)),
        control("Layer B", dcc.Dropdown(id=ids.CMP_LAYER_B, options=layer_opts_b, value=layer_b, clearable=False)),
        control("State (shared)", dcc.Dropdown(id=ids.CMP_STATE, options=state_opts, value=state, clearable=False)),
        control("Clusters k", dcc.Slider(id=ids.CMP_K, min=K_MIN, max=K_MAX, step=1, value=d["k"],
                                         marks={i: str(i) for i in (2, 5, 10, 15, 20)})),
        control("Words per cloud", dcc.Slider(id=ids.CMP_NWORDS, min=5, max=40, step=1, value=min(d["nwords"], 40),
                                              marks={5: "5", 20: "20", 40: "40"})),
        control("Word (detail)", dcc.Dropdown(id=ids.CMP_WORD, options=[{"label": d["word"], "value": d["word"]}]
                                              if d["word"] else [], value=d["word"], searchable=True,
                                              placeholder="click a word in either view")),
        html.P("Units are matched by the correlation of their responses over the words both models co-clustered "
               "(Hungarian matching). Outlined cells: strongly matched units, or the pair of the cell you clicked. "
               "Chance: the same matching after shuffling the shared words of one model (grey band).",
               className="muted small"),
        html.Button("Matched units CSV", id=ids.CMP_CSV, n_clicks=0, className="btn"),
    ], className="panel")
    main = html.Main([
        html.Div(alert, id=ids.CMP_ALERT),
        html.Div([
            html.Section([dcc.Loading(dcc.Graph(id=ids.CMP_CLUSTER_A, config=GRAPH_CONFIG), type="circle",
                                      delay_show=300),
                          dcc.Graph(id=ids.CMP_DETAIL_A, config=GRAPH_CONFIG, className="cmp-detail")],
                         className="card half"),
            html.Section([dcc.Loading(dcc.Graph(id=ids.CMP_CLUSTER_B, config=GRAPH_CONFIG), type="circle",
                                      delay_show=300),
                          dcc.Graph(id=ids.CMP_DETAIL_B, config=GRAPH_CONFIG, className="cmp-detail")],
                         className="card half"),
        ], className="side-by-side cmp-views"),
        html.Div([
            html.Section([html.H4("Matched units"),
                          dcc.Graph(id=ids.CMP_MATCH_FIG, config=GRAPH_CONFIG),
                          html.Div(id=ids.CMP_MATCHES)], className="card third"),
            html.Section([html.H4("Cluster overlap"), html.Div(id=ids.CMP_OVERLAP),
                          dcc.Graph(id=ids.CMP_OVERLAP_FIG, config=GRAPH_CONFIG)], className="card third"),
            html.Section([dcc.Graph(id=ids.CMP_GRADIENT, config=GRAPH_CONFIG)], className="card third"),
        ], className="side-by-side"),
        html.Section([
            html.H4("Where A beats B"),
            html.Div(id=ids.CMP_LOSS_SUMMARY),
            html.Div([dcc.Loading(dcc.Graph(id=ids.CMP_LOSS_TAGS, config=GRAPH_CONFIG), type="circle"),
                      dcc.Graph(id=ids.CMP_LOSS_WORDS, config=GRAPH_CONFIG)], className="side-by-side"),
            html.Div(id=ids.CMP_LOSS_TABLES),
        ], className="card cmp-losses"),
        html.Section([
            html.H4("POS probes: what each layer encodes, against controls"),
            html.Div(id=ids.CMP_PROBES, className="table-wrap"),
        ], className="card cmp-probes"),
    ], className="main")
    return html.Div([dcc.Location(id=ids.CMP_URL, refresh=False), dcc.Store(id=ids.CMP_PAIR, data={}),
                     dcc.Download(id=ids.CMP_DOWNLOAD), panel, main], className="page page-compare")


@callback(Output(ids.CMP_LAYER_A, "options"), Output(ids.CMP_LAYER_A, "value"), Output(ids.CMP_LAYER_B, "options"),
          Output(ids.CMP_LAYER_B, "value"), Output(ids.CMP_STATE, "options"), Output(ids.CMP_STATE, "value"),
          Output(ids.CMP_ALERT, "children"),
          Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_MODEL_B, "value"), State(ids.CMP_LAYER_A, "value"),
          State(ids.CMP_LAYER_B, "value"), State(ids.CMP_STATE, "value"), prevent_initial_call=True)
def _on_models(a, b, layer_a, layer_b, state):
    return logic.controls(context.reader(), a, b, layer_a, layer_b, state)


@callback(Output(ids.CMP_CLUSTER_A, "figure"), Output(ids.CMP_CLUSTER_B, "figure"), Output(ids.CMP_MATCHES, "children"),
          Output(ids.CMP_OVERLAP, "children"), Output(ids.CMP_OVERLAP_FIG, "figure"),
          Output(ids.CMP_MATCH_FIG, "figure"), Output(ids.CMP_WORD, "options"),
          Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_LAYER_A, "value"), Input(ids.CMP_MODEL_B, "value"),
          Input(ids.CMP_LAYER_B, "value"), Input(ids.CMP_STATE, "value"), Input(ids.CMP_K, "value"),
          Input(ids.CMP_NWORDS, "value"), Input(ids.CMP_PAIR, "data"), Input(ids.CMP_WORD, "value"))
def _on_view(a, layer_a, b, layer_b, state, k, nwords, pair, word):
    r = context.reader()
    fa, fb, listing, overlap, ofig, mfig, msg = logic.compare_view(r, a, layer_a, b, layer_b, state, k, nwords,
                                                                   pair, [word] if word else [])
    return (fa, fb, [msg, listing] if msg else listing, overlap, ofig, mfig,
            logic.word_options(r, a, layer_a, b, layer_b, state, k, word))


@callback(Output(ids.CMP_PAIR, "data"), Output(ids.CMP_WORD, "value"),
          Input(ids.CMP_CLUSTER_A, "clickData"), Input(ids.CMP_CLUSTER_B, "clickData"),
          State(ids.CMP_PAIR, "data"), prevent_initial_call=True)
def _on_click(click_a, click_b, pair):
    side = "a" if dash.ctx.triggered_id == ids.CMP_CLUSTER_A else "b"
    new_pair, words = logic.handle_click(click_a if side == "a" else click_b, side, pair)
    return new_pair, (words[0] if words else dash.no_update)


@callback(Output(ids.CMP_DETAIL_A, "figure"), Output(ids.CMP_DETAIL_B, "figure"),
          Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_LAYER_A, "value"), Input(ids.CMP_MODEL_B, "value"),
          Input(ids.CMP_LAYER_B, "value"), Input(ids.CMP_STATE, "value"), Input(ids.CMP_WORD, "value"))
def _on_detail(a, layer_a, b, layer_b, state, word):
    return logic.detail_pair(context.reader(), a, layer_a, b, layer_b, state, [word] if word else [])


@callback(Output(ids.CMP_GRADIENT, "figure"), Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_MODEL_B, "value"))
def _on_gradient(a, b):
    return logic.gradient(context.reader(), a, b)


@callback(Output(ids.CMP_LOSS_SUMMARY, "children"), Output(ids.CMP_LOSS_TAGS, "figure"),
          Output(ids.CMP_LOSS_WORDS, "figure"), Output(ids.CMP_LOSS_TABLES, "children"),
          Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_MODEL_B, "value"))
def _on_losses(a, b):
    return losses_panel(context.reader(), a, b)


@callback(Output(ids.CMP_PROBES, "children"), Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_MODEL_B, "value"))
def _on_probes(a, b):
    return compare_probes(context.reader(), a, b)


@callback(Output(ids.CMP_URL, "search"),
          Input(ids.CMP_MODEL_A, "value"), Input(ids.CMP_LAYER_A, "value"), Input(ids.CMP_MODEL_B, "value"),
          Input(ids.CMP_LAYER_B, "value"), Input(ids.CMP_STATE, "value"), Input(ids.CMP_K, "value"),
          Input(ids.CMP_NWORDS, "value"), Input(ids.CMP_WORD, "value"))
def _on_url(a, layer_a, b, layer_b, state, k, nwords, word):
    return logic.url_search(a, layer_a, b, layer_b, state, k, nwords, [word] if word else [])


@callback(Output(ids.CMP_DOWNLOAD, "data"), Output(ids.CMP_ALERT, "children", allow_duplicate=True),
          Input(ids.CMP_CSV, "n_clicks"), State(ids.CMP_MODEL_A, "value"), State(ids.CMP_LAYER_A, "value"),
          State(ids.CMP_MODEL_B, "value"), State(ids.CMP_LAYER_B, "value"), State(ids.CMP_STATE, "value"),
          State(ids.CMP_K, "value"), prevent_initial_call=True)
def _on_csv(_n, a, layer_a, b, layer_b, state, k):
    if not a or not b or layer_a is None or layer_b is None or not state:
        return dash.no_update, dash.no_update
    r = context.reader()
    try:
        df = logic.matches_csv(r, a, layer_a, b, layer_b, state, k or 6)
    except Exception as e:  # noqa: BLE001 - an unknown model or analysis: said in the page, nothing downloaded
        return dash.no_update, error_alert(e, r, "/compare")
    return send_csv(df, f"{a}-L{layer_a}-vs-{b}-L{layer_b}-{state}-matches.csv"), dash.no_update
