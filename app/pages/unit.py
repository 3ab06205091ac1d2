"""A unit's page: what one hidden unit responds to (top contexts, distribution, words, POS tags, where it sits),
and the Find units box.

Layout and wiring only; the logic is in :mod:`app.logic.units`. The page is drawn from its URL
(``/unit?model=M&layer=L&state=S&unit=U``, ``k`` for its cluster, ``b``/``layer_b`` for the matched unit).
"""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from app import context, ids, notes_panel
from app.logic import units as logic
from app.logic.common import corrections_alert, default_model, error_alert
from app.urlstate import from_query

dash.register_page(__name__, path="/unit", name="Unit", title="RNNVis · Unit", order=2.7)
notes_panel.register()   # the notes panel's callbacks, once per app (they serve the Models page's panel too)


def _content(vs) -> tuple[list, str | None]:
    r = context.reader()
    model = default_model(r, vs.model)
    if vs.bad_model:
        raise ValueError(f"{vs.bad_model!r} is not a model id")
    if not model:
        return [html.P("No analysed model in the store yet.", className="muted")], None
    states = r.layer_states(model)
    layer = vs.layer if vs.layer in states else 0
    state = vs.state if vs.state in states[layer] else states[layer][0]
    hidden = int(r.model(model)["hidden_size"])
    unit = min(vs.unit or 0, hidden - 1)
    notes = list(vs.notes)
    if (vs.layer, vs.state, vs.unit) != (layer, state, unit):
        notes.append(f"showing layer {layer}, state {state}, unit {unit}")
    body = logic.page(r, vs, model, layer, state, unit)
    body.insert(2, notes_panel.panel(_note_target(r, vs, model, layer, state, unit), "Team notes on this unit"))
    return corrections_alert(notes) + body, model


def _note_target(r, vs, model: str, layer: int, state: str, unit: int) -> dict:
    """What the notes panel notes: this unit, and its cluster at the URL's k."""
    target = {"model_id": model, "layer": layer, "state": state, "k": vs.k, "unit": unit}
    try:
        units = r.clusters(model, layer, state, vs.k).units.set_index("unit")
        target["cluster"] = int(units.loc[unit, "cluster"])
    except Exception:  # noqa: BLE001 - no clusters at this k: the unit alone (the page says what is missing)
        pass
    return target


def layout(**query) -> html.Div:
    vs = from_query(query)
    model = None
    try:
        body, model = _content(vs)
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        body = [error_alert(e, None, logic.PAGE)]
    panel = html.Aside([
        html.H3("Unit"),
        html.P("One hidden unit: where it fires, what it responds to, where it sits. Every view links here "
               "(a chip's cell in Explore, a unit on Projection, a row on Patterns, a pair on Compare).",
               className="muted small"),
        logic.find_box(ids.UNIT_FIND_TEXT, ids.UNIT_FIND_MODE, ids.UNIT_FIND_GO, ids.UNIT_FIND_RESULTS),
    ], className="panel")
    return html.Div([dcc.Store(id=ids.UNIT_MODEL, data=model), panel,
                     html.Main(body, className="main")], className="page page-unit")


@callback(Output(ids.UNIT_FIND_RESULTS, "children"), Input(ids.UNIT_FIND_GO, "n_clicks"),
          Input(ids.UNIT_FIND_TEXT, "n_submit"), State(ids.UNIT_FIND_TEXT, "value"),
          State(ids.UNIT_FIND_MODE, "value"), State(ids.UNIT_MODEL, "data"), prevent_initial_call=True)
def _on_find(_go, _submit, text, mode, model):
    return logic.find_results(context.reader(), model, mode, text)
