"""Explore: memory chips, word clouds and links; sentence glyphs; the detail view.

Layout and wiring only; the logic is in :mod:`app.logic.explore`.
"""
from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from app import context, ids
from app.controls import GRAPH_CONFIG, control, model_options
from app.hosted import auth
from app.logic import explore as logic
from app.logic import explore_url, units
from app.logic.common import (
    analysed_models,
    corrections_alert,
    default_model,
    error_alert,
    layer_options,
    pick_layer_state,
    picked_notes,
)
from app.logic.csv_export import send_csv
from app.logic.losses import ablation_view
from app.urlstate import K_MAX, K_MIN, from_query

dash.register_page(__name__, path="/explore", name="Explore", title="RNNVis · Explore", order=1)


def _initial(vs) -> tuple[list, list, Any, list, Any, list, Any, float, int]:
    """(alert, model options, model, layer options, layer, state options, state, colour clip, largest k) of the
    page as the URL asks, or what is left of them when the store cannot answer (the alert says why). A value of
    the URL that had to be corrected is named in one line."""
    alert = []
    notes = list(vs.notes)
    model_opts: list = []
    layers: list = []
    states: list = []
    layer = state = None
    model = None
    clip, kmax = -1.0, K_MAX
    try:
        r = context.reader()
        model_opts = analysed_models(r)
        model = default_model(r, vs.model)
        if vs.bad_model:
            alert = [error_alert(ValueError(f"{vs.bad_model!r} is not a model id"), r)]
        if model:
            try:
                r.require_analysis(model)
                r.prefetch(model)
                layers, states = layer_options(r, model)
                layer, state = pick_layer_state(r, model, vs.layer, vs.state)
                notes += picked_notes(r, model, (vs.layer, vs.state), (layer, state))
                clip = logic.auto_clip(r, model, layer, state) if vs.clip is None else vs.clip
                kmax = max(K_MIN, min(K_MAX, max(r.ks(model) or [K_MAX])))
                if vs.k > kmax:   # one note for k: what the URL asked for, and what the model has
                    asked = next((n.split()[1] for n in notes if n.startswith("k ")), vs.k)
                    notes = [n for n in notes if not n.startswith("k ")]
                    notes.append(f"k {asked} → {kmax} (the largest k analysed for {model})")
            except Exception as e:  # noqa: BLE001 - unknown model / no analysis: say so in the page
                alert = [error_alert(e, r)]
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        alert = [error_alert(e)]
    return (alert + corrections_alert(notes), model_options(model_opts, model), model, layers, layer, states, state,
            clip, kmax)


def _panel(vs, model_opts: list, model: Any, layers: list, layer: Any, states: list, state: Any, clip: float,
           kmax: int) -> html.Aside:
    """The control panel: model, layer, state, the view's settings, sentences and downloads."""
    return html.Aside([
        html.H3("Explore"),
        control("Model", dcc.Dropdown(id=ids.EX_MODEL, options=model_opts, value=model, clearable=False)),
        html.Div([
            control("Layer", dcc.Dropdown(id=ids.EX_LAYER, options=layers, value=layer, clearable=False), narrow=True),
            control("State", dcc.Dropdown(id=ids.EX_STATE, options=states, value=state, clearable=False)),
        ], className="control-row"),
        control("Clusters k", dcc.Slider(id=ids.EX_K, min=K_MIN, max=kmax, step=1, value=min(vs.k, kmax),
                                         marks={i: str(i) for i in (2, 5, 10, 15, 20)}),
                "number of co-clusters on each axis"),
        control("Words per cloud", dcc.Slider(id=ids.EX_NWORDS, min=5, max=60, step=1, value=vs.nwords,
                                              marks={5: "5", 20: "20", 40: "40", 60: "60"})),
        control("Link stroke width", dcc.Slider(id=ids.EX_STROKE, min=0.25, max=3, step=0.25, value=vs.stroke,
                                                marks={0.25: "thin", 1: "1", 3: "thick"}, allow_direct_input=False)),
        control(["Link filter (", html.Span("|e|", className="as-typed"), " ÷ strongest)"], dcc.RangeSlider(
            id=ids.EX_LINKS, min=0, max=1, step=0.05, value=list(vs.links), marks={0: "0", 0.5: "0.5", 1: "1"},
            allow_direct_input=False), "links whose |edge weight| lies outside this range are hidden"),
        control("Colour clip (response, log scale)", dcc.Slider(
            id=ids.EX_CLIP, min=-3, max=0.5, step=0.25, value=clip, allow_direct_input=False,
            marks={-3: "0.001", -2: "0.01", -1: "0.1", 0: "1"}),
            "responses beyond ± 10^value get the end colours of the scale"),
        dcc.Checklist(id=ids.EX_OPTIONS, options=[{"label": " POS colours", "value": "pos"},
                                                  {"label": " align clouds with chips", "value": "align"},
                                                  {"label": " sentence glyphs beside the chips", "value": "glyphs"}],
                      value=list(vs.options), className="checklist"),
        html.Hr(),
        html.H4("Sentences"),
        dcc.Textarea(id=ids.EX_SENTENCE_TEXT, placeholder="Type a sentence, e.g. “I love the food though staff "
                     "is not helpful”", className="sentence-box", maxLength=20000),
        html.Div([html.Button("Add sentence", id=ids.EX_SENTENCE_ADD, n_clicks=0, className="btn btn-primary",
                              **auth.gate("member", "add sentences")),
                  html.Button("Clear", id=ids.EX_SENTENCE_CLEAR, n_clicks=0, className="btn")],
                 className="button-row"),
        dcc.Loading(html.Div(id=ids.EX_SENTENCE_MSG), type="dot"),
        html.Hr(),
        units.find_box(ids.EX_FIND_TEXT, ids.EX_FIND_MODE, ids.EX_FIND_GO, ids.EX_FIND_RESULTS),
        html.Hr(),
        html.H4("Download"),
        html.Div([html.Button("Clusters CSV", id=ids.EX_CSV_CLUSTERS, n_clicks=0, className="btn"),
                  html.Button("Detail CSV", id=ids.EX_CSV_DETAIL, n_clicks=0, className="btn")],
                 className="button-row"),
        html.P("Figures: camera icon in each figure's toolbar (format below the nav bar).", className="muted small"),
    ], className="panel")


def _main(vs, alert: list) -> html.Main:
    """The co-cluster figure, the detail view and the sentence glyphs."""
    return html.Main([
        html.Div(alert, id=ids.EX_ALERT),
        html.Div(id=ids.EX_SUMMARY, className="summary-line"),
        html.Section([
            html.Div([html.H4("Co-clusters: memory chips ↔ word clouds"),
                      html.Span("click a word: colour the chips by its response · click a cell: the unit's words · "
                                "click a chip or cloud label: highlight", className="muted small"),
                      dcc.Link("2-D map →", id=ids.EX_MAP_LINK, href="/projection", className="map-link",
                               title="these words and units on the projection page (PCA / t-SNE)")],
                     className="card-head"),
            dcc.Loading(dcc.Graph(id=ids.EX_COCLUSTER, config=GRAPH_CONFIG, className="cocluster-graph"),
                        type="circle", delay_show=300),
        ], className="card"),
        html.Div([
            html.Section([
                html.Div([html.H4("Detail"),
                          dcc.RadioItems(id=ids.EX_DETAIL_MODE, options=[
                              {"label": " words", "value": "word"}, {"label": " unit", "value": "unit"}],
                              value=vs.detail_mode, inline=True),
                          dcc.Dropdown(id=ids.EX_WORDS, options=[{"label": w, "value": w} for w in vs.words],
                                       value=list(vs.words), multi=True, search_order="original",
                                       placeholder="words to compare (≤ 3): type any word of the vocabulary",
                                       className="words-dropdown"),
                          dcc.Link("", id=ids.EX_UNIT_LINK, href="/unit", className="unit-page-link")],
                         className="card-head"),
                html.Div(id=ids.EX_WORDS_MSG),
                html.Div(id=ids.EX_DETAIL_MSG),
                dcc.Graph(id=ids.EX_DETAIL, config=GRAPH_CONFIG),
            ], className="card"),
            html.Section([
                html.Div([html.H4("Does this chip matter?"),
                          html.Span("the loss when the selected chip's units are zeroed, by word class, against "
                                    "random unit sets of the same size", className="muted small")],
                         className="card-head"),
                dcc.Graph(id=ids.EX_ABLATION, config=GRAPH_CONFIG),
            ], className="card"),
            html.Section([
                html.Div([html.H4("Sentence glyphs"),
                          html.Span("per token and unit cluster: grey = preserved, pale bars = α±/|H|, "
                                    "dark bars = Δα±/|H|", className="muted small")], className="card-head"),
                html.Ul(id=ids.EX_SENTENCE_LIST, className="sentence-list"),
                dcc.Graph(id=ids.EX_GLYPHS, config=GRAPH_CONFIG),
            ], className="card"),
        ], className="stack"),
    ], className="main")


def _selection(vs, model, layer, state) -> dict:
    """The URL's unit with its chip (its cluster at k), selected as a click on its cell selects them."""
    if vs.unit is None:
        return {}
    try:
        units = context.reader().clusters(model, int(layer), state, vs.k).units.set_index("unit")
        return {"chip": int(units.loc[vs.unit, "cluster"]), "unit": vs.unit}
    except Exception:  # noqa: BLE001 - no such unit or view: the unit alone, as the page says what is wrong
        return {"unit": vs.unit}


def layout(**query) -> html.Div:
    vs = from_query(query)
    alert, model_opts, model, layers, layer, states, state, clip, kmax = _initial(vs)
    panel = _panel(vs, model_opts, model, layers, layer, states, state, clip, kmax)
    main = _main(vs, alert)
    return html.Div([
        dcc.Location(id=ids.EX_URL, refresh=False),
        dcc.Store(id=ids.EX_SENTENCES, data=list(vs.sentences)),
        dcc.Store(id=ids.EX_SELECTION, data=_selection(vs, model, layer, state)),
        dcc.Download(id=ids.EX_DOWNLOAD),
        panel, main,
    ], className="page page-explore")


@callback(Output(ids.EX_LAYER, "options"), Output(ids.EX_LAYER, "value"), Output(ids.EX_STATE, "options"),
          Output(ids.EX_STATE, "value"), Output(ids.EX_K, "max"), Output(ids.EX_CLIP, "value"),
          Output(ids.EX_ALERT, "children"),
          Input(ids.EX_MODEL, "value"), State(ids.EX_LAYER, "value"), State(ids.EX_STATE, "value"),
          prevent_initial_call=True)
def _on_model(model, layer, state):
    return logic.controls_for_model(context.reader(), model, layer, state)


@callback(Output(ids.EX_COCLUSTER, "figure"), Output(ids.EX_SUMMARY, "children"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_K, "value"), Input(ids.EX_NWORDS, "value"), Input(ids.EX_STROKE, "value"),
          Input(ids.EX_LINKS, "value"), Input(ids.EX_CLIP, "value"), Input(ids.EX_OPTIONS, "value"),
          Input(ids.EX_WORDS, "value"), Input(ids.EX_SELECTION, "data"), Input(ids.EX_SENTENCES, "data"))
def _on_view(model, layer, state, k, nwords, stroke, links, clip, options, words, selection, sentences):
    return logic.cluster_view(context.reader(), model, layer, state, k, nwords, stroke, links, clip, options,
                              words, selection, sentences)


@callback(Output(ids.EX_WORDS, "options"), Input(ids.EX_WORDS, "search_value"), Input(ids.EX_MODEL, "value"),
          Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"), Input(ids.EX_K, "value"),
          Input(ids.EX_WORDS, "value"))
def _on_word_search(search, model, layer, state, k, words):
    """What the user types in the word picker, searched in the model's vocabulary on the server (the picked
    words stay among the options, or Dash 4's dropdown would drop them)."""
    return logic.word_options(context.reader(), model, layer, state, k, search, words)


@callback(Output(ids.EX_WORDS, "value"), Output(ids.EX_SELECTION, "data"), Output(ids.EX_DETAIL_MODE, "value"),
          Output(ids.EX_WORDS_MSG, "children", allow_duplicate=True),
          Input(ids.EX_COCLUSTER, "clickData"), State(ids.EX_WORDS, "value"), State(ids.EX_SELECTION, "data"),
          prevent_initial_call=True)
def _on_click(click, words, selection):
    new_words, sel, mode = logic.handle_click(click, words, selection)
    return new_words, sel, mode, logic.click_words_note(words, new_words)


@callback(Output(ids.EX_WORDS, "value", allow_duplicate=True), Output(ids.EX_WORDS_MSG, "children"),
          Input(ids.EX_WORDS, "value"), prevent_initial_call=True)
def _on_words(words):
    """A fourth word picked in the picker: refused, and said so."""
    return logic.words_picked(words)


@callback(Output(ids.EX_DETAIL, "figure"), Output(ids.EX_DETAIL_MSG, "children"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_WORDS, "value"), Input(ids.EX_DETAIL_MODE, "value"), Input(ids.EX_SELECTION, "data"))
def _on_detail(model, layer, state, words, mode, selection):
    return logic.detail_view(context.reader(), model, layer, state, words, mode, selection)


@callback(Output(ids.EX_ABLATION, "figure"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_K, "value"), Input(ids.EX_SELECTION, "data"))
def _on_ablation(model, layer, state, k, selection):
    return ablation_view(context.reader(), model, layer, state, k, selection)


@callback(Output(ids.EX_SENTENCES, "data"), Output(ids.EX_SENTENCE_MSG, "children"),
          Output(ids.EX_SENTENCE_TEXT, "value"),
          Input(ids.EX_SENTENCE_ADD, "n_clicks"), Input(ids.EX_SENTENCE_CLEAR, "n_clicks"),
          State(ids.EX_MODEL, "value"), State(ids.EX_SENTENCE_TEXT, "value"), State(ids.EX_SENTENCES, "data"),
          prevent_initial_call=True)
def _on_sentence(_add, _clear, model, text, sentences):
    if dash.ctx.triggered_id == ids.EX_SENTENCE_CLEAR:
        return [], "", dash.no_update
    try:
        user = auth.require_role("member")  # evaluating a sentence spends compute: members only
    except auth.PermissionDenied as e:
        return sentences or [], error_alert(e), dash.no_update
    return logic.add_sentence(context.reader(), model, text, sentences, created_by=user.name)


@callback(Output(ids.EX_GLYPHS, "figure"), Output(ids.EX_SENTENCE_LIST, "children"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_K, "value"), Input(ids.EX_SENTENCES, "data"))
def _on_glyphs(model, layer, state, k, sentences):
    return logic.glyph_view(context.reader(), model, layer, state, k, sentences)


@callback(Output(ids.EX_URL, "search"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_K, "value"), Input(ids.EX_NWORDS, "value"), Input(ids.EX_WORDS, "value"),
          Input(ids.EX_SENTENCES, "data"), Input(ids.EX_SELECTION, "data"), Input(ids.EX_DETAIL_MODE, "value"),
          Input(ids.EX_STROKE, "value"), Input(ids.EX_LINKS, "value"), Input(ids.EX_CLIP, "value"),
          Input(ids.EX_OPTIONS, "value"))
def _on_url(model, layer, state, k, nwords, words, sentences, selection, mode, stroke, links, clip, options):
    settings = explore_url.ViewSettings(stroke, links, clip, options)
    return explore_url.url_search(model, layer, state, k, nwords, words, sentences, selection, mode,
                            settings.without_auto_clip(context.reader(), model, layer, state))


@callback(Output(ids.EX_MAP_LINK, "href"), Input(ids.EX_URL, "search"))
def _on_map_link(search):
    """The projection page with this view's model, layer, state, k, words and unit (their points highlighted)."""
    return "/projection" + (search or "")


@callback(Output(ids.EX_DOWNLOAD, "data"), Output(ids.EX_ALERT, "children", allow_duplicate=True),
          Input(ids.EX_CSV_CLUSTERS, "n_clicks"), Input(ids.EX_CSV_DETAIL, "n_clicks"), State(ids.EX_MODEL, "value"),
          State(ids.EX_LAYER, "value"), State(ids.EX_STATE, "value"), State(ids.EX_K, "value"),
          State(ids.EX_WORDS, "value"), prevent_initial_call=True)
def _on_csv(_c, _d, model, layer, state, k, words):
    if not model or layer is None or not state:
        return dash.no_update, dash.no_update
    r = context.reader()
    try:
        if dash.ctx.triggered_id == ids.EX_CSV_DETAIL:
            df = logic.detail_csv(r, model, layer, state, words or [])
            return send_csv(df, f"{model}-L{layer}-{state}-detail.csv"), dash.no_update
        df = logic.clusters_csv(r, model, layer, state, k or 6)
    except Exception as e:  # noqa: BLE001 - an unknown model or analysis: said in the page, nothing downloaded
        return dash.no_update, error_alert(e, r)
    return send_csv(df, f"{model}-L{layer}-{state}-k{k}-clusters.csv"), dash.no_update


@callback(Output(ids.EX_UNIT_LINK, "href"), Output(ids.EX_UNIT_LINK, "children"),
          Input(ids.EX_MODEL, "value"), Input(ids.EX_LAYER, "value"), Input(ids.EX_STATE, "value"),
          Input(ids.EX_K, "value"), Input(ids.EX_SELECTION, "data"))
def _on_unit_link(model, layer, state, k, selection):
    unit = (selection or {}).get("unit")
    if not model or layer is None or not state or unit is None:
        return "/unit", ""
    return units.unit_href(model, layer, state, unit, k), f"unit {unit}'s page →"


@callback(Output(ids.EX_FIND_RESULTS, "children"), Input(ids.EX_FIND_GO, "n_clicks"),
          Input(ids.EX_FIND_TEXT, "n_submit"), State(ids.EX_FIND_TEXT, "value"), State(ids.EX_FIND_MODE, "value"),
          State(ids.EX_MODEL, "value"), State(ids.EX_K, "value"), prevent_initial_call=True)
def _on_find(_go, _submit, text, mode, model, k):
    return units.find_results(context.reader(), model, mode, text, k)
