"""Patterns: LSTMVis-style pattern search over the stored token states.

Layout and wiring only; the logic is in :mod:`app.logic.patterns`.
"""
from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, callback, dcc, html

from app import context, ids
from app.controls import GRAPH_CONFIG, control, model_options
from app.figures import message_figure
from app.hosted import auth
from app.logic import patterns as logic
from app.logic.common import analysed_models, corrections_alert, default_model, error_alert

dash.register_page(__name__, path="/patterns", name="Patterns", title="RNNVis · Patterns", order=2.5)


NO_SEARCH = "Select a span and units, then Search."


def layout(**query) -> html.Div:
    ps = logic.from_query(query)
    alert, model_opts, key_opts, key, model, hidden = [], [], [], None, None, 1
    try:
        r = context.reader()
        model_opts = analysed_models(r)
        model = default_model(r, ps.model)
        if model:
            try:
                key_opts, key = logic.key_options(r, model, ps.key)
                hidden = r.token_info(model).hidden
                asked = [f"layer {ps.layer}, state {ps.state} → {key.replace(':', ', state ')} (the states "
                         f"stored per token)"] if ps.key and key and ps.key != key else []
                alert = corrections_alert(list(ps.notes) + asked)
            except Exception as e:  # noqa: BLE001 - no token states: say so in the page
                alert = [error_alert(e, r, logic.PAGE)]
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        alert = [error_alert(e)]
    model_opts = model_options(model_opts, model)
    at = ps.at if ps.at is not None else max(0, (ps.start or 0) - 5)
    source = "sentence" if ps.sentence else "corpus"
    unit_opts = [{"label": f"u{u}", "value": u} for u in range(max(hidden, max(ps.units, default=0) + 1))]
    panel = html.Aside([
        html.H3("Patterns"),
        control("Model", dcc.Dropdown(id=ids.PT_MODEL, options=model_opts, value=model, clearable=False)),
        control("Layer and state", dcc.Dropdown(id=ids.PT_KEY, options=key_opts, value=key, clearable=False),
                "the (layer, state)s the analysis stored per token (option --token-states)"),
        control("Source", dcc.RadioItems(id=ids.PT_SOURCE, value=source, inline=True, options=[
            {"label": " corpus passage", "value": "corpus"}, {"label": " typed sentence", "value": "sentence"}])),
        control("Passage from position", dcc.Input(id=ids.PT_AT, type="number", min=0, step=1, value=at,
                                                   debounce=True, className="input")),
        control("Sentence", dcc.Input(id=ids.PT_TEXT, type="text", placeholder="type a sentence", debounce=False,
                                      maxLength=20000, className="input")),
        html.Button("Trace sentence", id=ids.PT_TRACE, n_clicks=0, className="btn",
                    **auth.gate("member", "trace sentences")),
        html.Hr(),
        control("Threshold θ", dcc.Slider(id=ids.PT_THETA, min=-1, max=1, step=0.05, value=ps.theta,
                                          marks={-1: "-1", 0: "0", 0.5: "0.5", 1: "1"}),
                "a unit is 'on' at a token when its value is at least θ"),
        control("Units (proposed from the span; edit freely)", dcc.Dropdown(
            id=ids.PT_UNITS, options=unit_opts, value=list(ps.units), multi=True, placeholder="select a span")),
        html.Div(id=ids.PT_UNIT_LINKS, className="unit-links small"),
        dcc.Checklist(id=ids.PT_OPTIONS, options=[{"label": " off just before the span", "value": "off"}],
                      value=["off"] if ps.off_before else [], className="checklist"),
        control("Least units matched (empty: all)", dcc.Input(id=ids.PT_MIN, type="number", min=1, step=1,
                                                              value=ps.min_units, className="input")),
        html.Button("Search", id=ids.PT_SEARCH, n_clicks=0, className="btn btn-primary"),
        html.P("A match is a span of L ± 1 tokens (L = the selected span's length) where the units are on at "
               "every token and off right after; ranked by how many of the units match.", className="muted small"),
    ], className="panel")
    main = html.Main([
        html.Div(alert, id=ids.PT_ALERT),
        html.Section([
            html.Div(id=ids.PT_SPAN_TEXT, className="muted small"),
            html.Div(id=ids.PT_TOKENS, className="pt-tokens"),
            dcc.Graph(id=ids.PT_PASSAGE, config=GRAPH_CONFIG, figure=message_figure("Loading…", height=160)),
        ], className="card"),
        html.Section([
            html.Div(id=ids.PT_COUNT, className="muted"),
            dcc.Loading(dcc.Graph(id=ids.PT_MATCHES, config=GRAPH_CONFIG,
                                  figure=message_figure(NO_SEARCH, height=160)),
                        type="circle", delay_show=300),
        ], className="card"),
        html.Div([
            html.Section([html.H4("Matches"), html.Ol(id=ids.PT_MATCH_LIST, className="pt-matches")],
                         className="card half"),
            html.Section([html.H4("Words and POS at each position of the matches"), html.Div(id=ids.PT_SUMMARY)],
                         className="card half"),
        ], className="side-by-side"),
    ], className="main")
    return html.Div([dcc.Location(id=ids.PT_URL, refresh=False), dcc.Store(id=ids.PT_SPAN, data=ps.span),
                     dcc.Store(id=ids.PT_SENTENCE, data=ps.sentence), panel, main], className="page page-patterns")


@callback(Output(ids.PT_KEY, "options"), Output(ids.PT_KEY, "value"), Output(ids.PT_ALERT, "children"),
          Input(ids.PT_MODEL, "value"), State(ids.PT_KEY, "value"), prevent_initial_call=True)
def _on_model(model, key):
    r = context.reader()
    try:
        opts, value = logic.key_options(r, model, key)
        return opts, value, []
    except Exception as e:  # noqa: BLE001 - shown in the page
        return [], None, error_alert(e, r, logic.PAGE)


@callback(Output(ids.PT_TOKENS, "children"), Output(ids.PT_PASSAGE, "figure"), Output(ids.PT_SPAN_TEXT, "children"),
          Input(ids.PT_MODEL, "value"), Input(ids.PT_KEY, "value"), Input(ids.PT_SOURCE, "value"),
          Input(ids.PT_AT, "value"), Input(ids.PT_SENTENCE, "data"), Input(ids.PT_SPAN, "data"),
          Input(ids.PT_THETA, "value"), Input(ids.PT_UNITS, "value"))
def _on_passage(model, key, source, at, sentence, span, theta, units):
    r = context.reader()
    try:
        return logic.passage_view(r, model, key, source, at, sentence, span, theta, units)
    except Exception as e:  # noqa: BLE001 - shown in the page
        return [error_alert(e, r, logic.PAGE)], message_figure("No passage to show.", height=160), ""


@callback(Output(ids.PT_SENTENCE, "data"), Output(ids.PT_SOURCE, "value"), Output(ids.PT_SPAN, "data"),
          Output(ids.PT_COUNT, "children", allow_duplicate=True),
          Output(ids.PT_MATCHES, "figure", allow_duplicate=True),
          Output(ids.PT_MATCH_LIST, "children", allow_duplicate=True),
          Output(ids.PT_SUMMARY, "children", allow_duplicate=True),
          Input(ids.PT_TRACE, "n_clicks"), State(ids.PT_MODEL, "value"), State(ids.PT_TEXT, "value"),
          prevent_initial_call=True)
def _on_trace(_n, model, text):
    try:
        user = auth.require_role("member")  # evaluating a sentence spends compute: members only
        sid = context.reader().add_sentence(model, text or "", created_by=user.name)
    except Exception as e:  # noqa: BLE001 - shown in the page
        return (dash.no_update,) * 3 + (error_alert(e, context.reader(), logic.PAGE),) + (dash.no_update,) * 3
    # the matches shown belong to the previous passage: clear them
    return (sid, "sentence", None, "Sentence traced: click the first and the last token of a span.",
            message_figure(NO_SEARCH, height=160), [], [])


@callback(Output(ids.PT_SPAN, "data", allow_duplicate=True),
          Input({"type": ids.PT_TOKEN, "index": ALL}, "n_clicks"), State(ids.PT_SPAN, "data"),
          State(ids.PT_SOURCE, "value"), State(ids.PT_AT, "value"), State(ids.PT_MODEL, "value"),
          prevent_initial_call=True)
def _on_token(clicks, span, source, at, model):
    trig = dash.ctx.triggered_id
    if not isinstance(trig, dict) or not dash.ctx.triggered[0].get("value") or not isinstance(trig.get("index"), int):
        return dash.no_update                       # buttons drawn anew (n_clicks 0), not a click
    offset = 0
    if source != "sentence":
        try:
            tokens = context.reader().token_info(model).tokens
        except Exception:  # noqa: BLE001 - no model: keep the span
            return dash.no_update
        offset = min(max(0, int(at or 0)), max(0, tokens - logic.PASSAGE))
    return logic.click(span, int(trig["index"]), offset)


@callback(Output(ids.PT_UNITS, "value"), Input(ids.PT_SPAN, "data"), Input(ids.PT_THETA, "value"),
          Input(ids.PT_OPTIONS, "value"), State(ids.PT_MODEL, "value"), State(ids.PT_KEY, "value"),
          State(ids.PT_SOURCE, "value"), State(ids.PT_AT, "value"), State(ids.PT_SENTENCE, "data"),
          State(ids.PT_UNITS, "value"), prevent_initial_call=True)
def _on_propose(span, theta, options, model, key, source, at, sentence, units):
    if not span or span.get("pending"):
        return dash.no_update
    try:
        return logic.propose(context.reader(), model, key, source, at, sentence, span, theta, "off" in (options or []))
    except Exception:  # noqa: BLE001 - the passage view shows the error
        return units or []


@callback(Output(ids.PT_MATCHES, "figure"), Output(ids.PT_MATCH_LIST, "children"), Output(ids.PT_SUMMARY, "children"),
          Output(ids.PT_COUNT, "children"),
          Input(ids.PT_SEARCH, "n_clicks"), State(ids.PT_MODEL, "value"), State(ids.PT_KEY, "value"),
          State(ids.PT_UNITS, "value"), State(ids.PT_THETA, "value"), State(ids.PT_SPAN, "data"),
          State(ids.PT_OPTIONS, "value"), State(ids.PT_MIN, "value"), State(ids.PT_AT, "value"),
          State(ids.PT_SOURCE, "value"), State(ids.PT_SENTENCE, "data"))
def _on_search(_n, model, key, units, theta, span, options, min_units, at, source, sentence):
    r = context.reader()
    ps = logic.state_of(model, key, units, theta, span, options, min_units, at, source, sentence)
    try:
        return logic.search_view(r, ps)
    except Exception as e:  # noqa: BLE001 - shown in the page
        return message_figure("The search failed.", height=160), [], [], error_alert(e, r, logic.PAGE)


@callback(Output(ids.PT_URL, "search"),
          Input(ids.PT_MODEL, "value"), Input(ids.PT_KEY, "value"), Input(ids.PT_UNITS, "value"),
          Input(ids.PT_THETA, "value"), Input(ids.PT_SPAN, "data"), Input(ids.PT_OPTIONS, "value"),
          Input(ids.PT_MIN, "value"), Input(ids.PT_AT, "value"), Input(ids.PT_SOURCE, "value"),
          Input(ids.PT_SENTENCE, "data"))
def _on_url(model, key, units, theta, span, options, min_units, at, source, sentence):
    return logic.to_query(logic.state_of(model, key, units, theta, span, options, min_units, at, source, sentence))


@callback(Output(ids.PT_UNIT_LINKS, "children"), Input(ids.PT_MODEL, "value"), Input(ids.PT_KEY, "value"),
          Input(ids.PT_UNITS, "value"))
def _on_unit_links(model, key, units):
    return logic.unit_links(model, key, units)
