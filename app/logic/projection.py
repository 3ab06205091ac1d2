"""Projection: 2-D maps of the words and the units, the selection they share with Explore, and the side by
side map of two models, as plain functions (wired by :mod:`app.pages.projection`).

The selection is ``{"words": [...], "units": [...]}``: clicking a point toggles it, a lasso or box replaces
the selection of that map (shift adds, as plotly does). It travels in the URL (``w``, ``unit``/``u``), and the
link to Explore carries it there: Explore colours the chips by the first word, overlays the box plots of the
first three words (most frequent first) and shows the first unit's words.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from app import figures
from app.figures import projection as pfig
from app.logic.common import (
    STATE_LABELS,
    alert,
    error_alert,
    event_points,
    guarded,
    layer_options,
    pick_layer_state,
)
from app.logic.units import unit_href
from app.reader import MAP_STATES, Reader
from app.urlstate import K_DEFAULT, MAX_PICKED, ViewState, to_query

log = logging.getLogger(__name__)
PAGE = "/projection"
EXPLORE = "/explore"
METHOD_LABELS = {"tsne": "t-SNE", "pca": "PCA"}
DRAGMODES = ("lasso", "select", "zoom", "pan")


def state_options(reader: Reader, model: str) -> list[dict]:
    """The states of the model that have maps (h, and c for an LSTM)."""
    _, states = layer_options(reader, model)
    return [o for o in states if o["value"] in MAP_STATES]


def pick(reader: Reader, model: str, layer: int | None, state: str | None) -> tuple[int, str]:
    """A mapped (layer, state) of the model, keeping the wanted ones where they exist."""
    lay, st = pick_layer_state(reader, model, layer, state)
    return lay, st if st in MAP_STATES else "h"


def controls_for_model(reader: Reader, model: str | None, layer: int | None, state: str | None
                       ) -> tuple[list, int | None, list, str | None, Any]:
    """Model changed: (layer options, layer, state options, state, alert)."""
    if not model:
        return [], None, [], None, alert("The store has no analysed model yet: run `rnnvis demo`.", page=PAGE)
    try:
        reader.require_analysis(model)
        layers, _ = layer_options(reader, model)
        lay, st = pick(reader, model, layer, state)
        return layers, lay, state_options(reader, model), st, []
    except Exception as e:  # noqa: BLE001 - shown to the user
        return [], None, [], None, error_alert(e, reader, PAGE)


def layer_b_options(reader: Reader, model_b: str | None, layer_b: int | None) -> tuple[list, int | None]:
    """Compare model changed: (its layer options, the layer: the wanted one, else its last)."""
    if not model_b:
        return [], None
    try:
        layers, _ = layer_options(reader, model_b)
    except Exception as e:  # noqa: BLE001 - the figures callback says what is wrong
        log.info("layers of %s: %s", model_b, e)
        return [], None
    values = [o["value"] for o in layers]
    return layers, (layer_b if layer_b in values else (values[-1] if values else None))


def _summary(v, method: str, extra: list | None = None) -> html.Span:
    p = v.params.get("word", {})
    dims = f"the first {p['pca_dims']} principal components" if p.get("pca_dims") else "the responses"
    fit = (f"perplexity {p['perplexity']:.3g}, {p.get('max_iter')} iterations on {dims}"
           if method == "tsne" and "perplexity" in p else
           "explained variance " + " + ".join(f"{r:.0%}" for r in p.get("explained_variance_ratio", [])))
    return html.Span([html.B(v.model_id), f" · layer {v.layer} · state {STATE_LABELS.get(v.state, v.state)} · "
                      f"{METHOD_LABELS[method]} · k = {v.k} · {len(v.words)} words, {len(v.units)} units · ",
                      f"{fit} · seed {p.get('seed', 0)} (precomputed by the analysis)", *(extra or [])],
                     className="summary")


def map_view(reader: Reader, model: str | None, layer: int | None, state: str | None, method: str | None,
             k: int | None, color: str | None, selection: dict | None, dragmode: str | None,
             model_b: str | None = None, layer_b: int | None = None) -> tuple[Any, Any, Any]:
    """(word map, unit map, summary); with ``model_b`` both maps show the two models side by side."""
    if not model or layer is None or not state:
        empty = figures.message_figure("Pick a model.")
        return empty, empty, ""
    method = method if method in METHOD_LABELS else "tsne"
    drag = dragmode if dragmode in DRAGMODES else "lasso"
    color = color if color in ("pos", "cluster") else "pos"
    sel = selection or {}
    words, units = sel.get("words") or [], [int(u) for u in sel.get("units") or []]

    def run() -> tuple[Any, Any, Any]:
        v = reader.map_view(model, int(layer), state, method, int(k or K_DEFAULT))
        if not model_b or layer_b is None:
            return (pfig.word_map_figure(v.words, color, words, drag), pfig.unit_map_figure(v.units, units, drag),
                    _summary(v, method, _selection_note(words, units, (model, int(layer), state, v.k))))
        vb = reader.map_view(model_b, int(layer_b), state, method, int(k or K_DEFAULT))
        names = (f"{model} L{layer}", f"{model_b} L{layer_b}")
        up = reader.unit_pairs((model, int(layer), state), (model_b, int(layer_b), state))
        c = up["chance"]
        note = [html.Br(), f"Compared with {names[1]}: units matched by the correlation of their responses over "
                f"{up['shared_words']} shared words (Hungarian matching, as on Compare); chance |r| up to "
                f"{c['level']:.2f}, {c['above']} of {len(up['pairs'])} pairs above it."]
        return (pfig.paired_word_figure(v.words, vb.words, names, color, words, drag),
                pfig.paired_unit_figure(v.units, vb.units, up["pairs"], names, units, drag),
                _summary(v, method, note + _selection_note(words, units, (model, int(layer), state, v.k))))

    def failed(a):
        return figures.message_figure("No map."), figures.message_figure("No map."), a
    return guarded(run, failed, reader, PAGE)


def _selection_note(words: Sequence[str], units: Sequence[int], key: tuple | None = None) -> list:
    """What is selected; with ``key`` (model, layer, state, k) each unit links to its page."""
    if not words and not units:
        return [html.Br(), html.Span("Click points, or drag a lasso or a box, to select words or units.",
                                     className="muted")]
    parts = []
    if words:
        shown = ", ".join(words[:12]) + (f" and {len(words) - 12} more" if len(words) > 12 else "")
        parts.append(f"{len(words)} word(s) selected: {shown}")
    links: list = []
    if units and key is not None:
        links = [" · units: "] + [dcc.Link(str(u), href=unit_href(*key[:3], u, key[3]), className="unit-link")
                                  for u in units[:20]] + ([" …"] if len(units) > 20 else [])
    elif units:
        parts.append(f"{len(units)} unit(s): " + ", ".join(map(str, units[:20])) + (" …" if len(units) > 20 else ""))
    return [html.Br(), html.Span([" · ".join(parts), *links], className="selection-note")]


def _points(data: dict | None, axis: str) -> list:
    """The items of ``axis`` among plotly's clicked or selected points (customdata [axis, item, side])."""
    out = []
    for p in event_points(data):
        cd = p.get("customdata")
        if isinstance(cd, list) and len(cd) >= 2 and cd[0] == axis:
            out.append((cd[1], cd[2] if len(cd) > 2 else "a"))
    return out


def _units_of_a(points: list, pairs: dict[int, int]) -> list[int]:
    """Unit ids of model A: a point of model B stands for its matched unit of A."""
    out = []
    for item, side in points:
        try:
            u = int(item)
        except (TypeError, ValueError):
            continue
        u = pairs.get(u) if side == "b" else u
        if u is not None:
            out.append(u)
    return out


def handle_selection(trigger: str | None, words_selected: dict | None, words_click: dict | None,
                     units_selected: dict | None, units_click: dict | None, selection: dict | None,
                     freq: dict[str, int] | None = None, b_to_a: dict[int, int] | None = None) -> dict:
    """The new selection after a click, a lasso/box (``*_selected``; None after a double-click: none) or a
    clear (``trigger`` says which).

    freq orders selected words most frequent first (so Explore's three are the most frequent of a lasso);
    b_to_a maps a unit of the compared model to its matched unit of the page's model.
    """
    sel = {"words": list((selection or {}).get("words") or []), "units": list((selection or {}).get("units") or [])}
    if trigger == "clear":
        return {"words": [], "units": []}
    data = words_selected if trigger == "words-select" else units_selected if trigger == "units-select" else None
    if data is None or event_points(data):
        # (no points: plotly re-selects inside the drawn lasso when the figure is redrawn (the new figure carries
        # the selection as selectedpoints, not the lasso) and reports no points: not the user's act. A
        # double-click, which clears, arrives as None.)
        _pick(trigger, sel, words_selected, words_click, units_selected, units_click, freq or {}, b_to_a or {})
    return {"words": sel["words"][:MAX_PICKED], "units": sel["units"][:MAX_PICKED]}


def _toggle(items: list, x: Any) -> list:
    """``items`` without ``x`` if it is there, else with ``x`` first."""
    return [y for y in items if y != x] if x in items else [x] + items


def _pick(trigger: str | None, sel: dict[str, list], words_selected: dict | None, words_click: dict | None,
          units_selected: dict | None, units_click: dict | None, freq: dict[str, int], b_to_a: dict[int, int]
          ) -> None:
    """Change ``sel`` as the click or lasso that ``trigger`` names asks."""
    if trigger == "words-click":
        for w, _ in _points(words_click, "word")[:1]:
            sel["words"] = _toggle(sel["words"], str(w))
    elif trigger == "words-select":
        ws = list(dict.fromkeys(str(w) for w, _ in _points(words_selected, "word")))
        sel["words"] = sorted(ws, key=lambda w: (-freq.get(w, 0), w))
    elif trigger == "units-click":
        for u in _units_of_a(_points(units_click, "unit")[:1], b_to_a):
            sel["units"] = _toggle(sel["units"], u)
    elif trigger == "units-select":
        sel["units"] = list(dict.fromkeys(_units_of_a(_points(units_selected, "unit"), b_to_a)))


def selection_inputs(reader: Reader, model: str | None, layer: int | None, state: str | None,
                     model_b: str | None, layer_b: int | None) -> tuple[dict[str, int], dict[int, int]]:
    """(word -> frequency, unit of B -> matched unit of A) for :func:`handle_selection`."""
    if not model or layer is None or state not in MAP_STATES:
        return {}, {}
    try:
        data = reader.layer_data(model, int(layer), state)
        freq = {str(w): int(f) for w, f in zip(data.words, data.freq)}
        b_to_a: dict[int, int] = {}
        if model_b and layer_b is not None:
            p = reader.unit_pairs((model, int(layer), state), (model_b, int(layer_b), state))["pairs"]
            b_to_a = {int(b): int(a) for a, b in zip(p["unit_a"], p["unit_b"])}
        return freq, b_to_a
    except Exception as e:  # noqa: BLE001 - the figures callback reports it; the selection keeps working
        log.info("selection inputs for %s: %s", model, e)
        return {}, {}


def view_state(model: str | None, layer: int | None, state: str | None, k: int | None, method: str | None,
               color: str | None, selection: dict | None, model_b: str | None = None,
               layer_b: int | None = None) -> ViewState:
    sel = selection or {}
    return ViewState(model=model, layer=layer, state=state, k=int(k or K_DEFAULT),
                     picked=tuple(str(w) for w in sel.get("words") or []),
                     units=tuple(int(u) for u in sel.get("units") or []),
                     method=method if method != "tsne" else None, color=color if color != "pos" else None,
                     model_b=model_b or None, layer_b=layer_b if model_b else None)


def url_search(*args: Any) -> str:
    """The page's URL query (same arguments as :func:`view_state`)."""
    return to_query(view_state(*args))


def explore_link(model: str | None, layer: int | None, state: str | None, k: int | None,
                 selection: dict | None) -> tuple[str, str]:
    """(href, text) of the link that opens the selection in Explore (its first three words, its first unit)."""
    sel = selection or {}
    words = [str(w) for w in sel.get("words") or []]
    units = [int(u) for u in sel.get("units") or []]
    vs = ViewState(model=model, layer=layer, state=state, k=int(k or K_DEFAULT), words=tuple(words[:3]),
                   unit=units[0] if units else None, detail="unit" if units else None)  # the unit's detail first
    what = []
    if words:
        what.append(", ".join(words[:3]) + (f" (3 most frequent of {len(words)})" if len(words) > 3 else ""))
    if units:
        what.append(f"unit {units[0]}" + (f" (first of {len(units)})" if len(units) > 1 else ""))
    text = f"Open {' and '.join(what)} in Explore →" if what else "Open this view in Explore →"
    return EXPLORE + to_query(vs), text


def selection_from_url(vs: ViewState) -> dict:
    return {"words": list(vs.map_words), "units": list(vs.map_units)}
