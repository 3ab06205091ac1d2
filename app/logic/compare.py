"""Compare: two models (or two layers of one) side by side, matched units, cluster overlap, gradient flow."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from dash import dcc, html

from app import figures
from app.logic.common import STATE_LABELS, alert, error_alert, event_points, guarded, picked_notes
from app.logic.units import unit_href
from app.reader import Reader
from app.urlstate import ViewState, to_query

PAGE = "/compare"
TOP_PAIRS = 15       # rows in the matched-unit list
HIGHLIGHT_R = 0.5    # matched pairs with |r| at least this are outlined when no pair is selected
HIGHLIGHT_MAX = 12


def defaults(reader: Reader, vs: ViewState) -> dict[str, Any]:
    """Models, layers and state of the page from the URL, filling the gaps (B: another model, else layer 0)."""
    ids = reader.model_ids()
    a = vs.model or (ids[0] if ids else None)
    b = vs.model_b or next((m for m in ids if m != a), a)
    return {"a": a, "b": b, "layer_a": vs.layer, "layer_b": vs.layer_b, "state": vs.state or "h", "k": vs.k,
            "nwords": vs.nwords, "word": vs.words[0] if vs.words else None}


def link_notes(reader: Reader, vs: ViewState, d: dict[str, Any], ctl: tuple) -> list[str]:
    """What the page changed of the link's layers and state (``d``: :func:`defaults`; ``ctl``: :func:`controls`),
    one phrase each, after what decoding the link corrected."""
    notes = list(vs.notes) + picked_notes(reader, d["a"], (vs.layer, None), (ctl[1], ctl[5]))
    if vs.layer_b is not None and vs.layer_b != ctl[3]:
        notes.append(f"layer B {vs.layer_b} → {ctl[3]} ({d['b']} has layers {min(reader.layer_states(d['b']))}–"
                     f"{max(reader.layer_states(d['b']))})")
    if vs.state and vs.state != ctl[5]:
        notes.append(f"state {vs.state} → {ctl[5]} (the states both models have: "
                     f"{', '.join(o['value'] for o in ctl[4])})")
    return notes


def controls(reader: Reader, a: str | None, b: str | None, layer_a: int | None, layer_b: int | None,
             state: str | None, avoid_same: bool = True) -> tuple[list, int | None, list, int | None, list, str | None,
                                                                   Any]:
    """(layer options A, layer A, layer options B, layer B, state options, state, alert).

    With the same model as A and B, B gets another layer than A (as the Models page's "Compare layers" link
    does) unless ``avoid_same`` is False (a URL that names both layers gets what it names).
    """
    try:
        if not a or not b:
            raise ValueError("Pick two models (the store needs at least one analysed model).")
        reader.require_analysis(a)
        reader.require_analysis(b)
        la, lb = reader.layer_states(a), reader.layer_states(b)
        shared = [s for s in la[min(la)] if s in lb[min(lb)]]
        opts_a = [{"label": f"layer {x}", "value": x} for x in la]
        opts_b = [{"label": f"layer {x}", "value": x} for x in lb]
        lay_a = layer_a if layer_a in la else max(la)
        self_pair = avoid_same and a == b and layer_b == lay_a and len(lb) > 1   # a trivial self-comparison
        fallback = max(lb) if (a != b or max(lb) != lay_a) else min(lb)
        lay_b = layer_b if layer_b in lb and not self_pair else fallback
        st = state if state in shared else "h"
        return (opts_a, lay_a, opts_b, lay_b, [{"label": STATE_LABELS.get(s, s), "value": s} for s in shared], st, [])
    except Exception as e:  # noqa: BLE001 - shown in the page
        return [], None, [], None, [], None, error_alert(e, reader, PAGE)


def _highlights(pairs: pd.DataFrame, pair: dict | None) -> tuple[tuple[int, ...], tuple[int, ...], pd.DataFrame]:
    if pair and pair.get("unit") is not None:
        col = "unit_a" if pair.get("side") == "a" else "unit_b"
        sel = pairs[pairs[col] == int(pair["unit"])]
    else:
        sel = pairs[pairs["correlation"].abs() >= HIGHLIGHT_R].head(HIGHLIGHT_MAX)
    return tuple(int(u) for u in sel["unit_a"]), tuple(int(u) for u in sel["unit_b"]), sel


def pairs_table(pairs: pd.DataFrame, selected: pd.DataFrame, name_a: str, name_b: str, mark: bool = True,
                chance_max: float | None = None, keys: tuple[tuple, tuple] | None = None) -> html.Table:
    """The strongest matched pairs, and the selected ones wherever they rank; with ``chance_max``, pairs whose |r|
    a shuffled matching also reaches are marked '≤ chance'; with ``keys`` ((model, layer, state) of A and B), each
    unit links to its page (matched in the other model)."""
    chosen = set(zip(selected["unit_a"], selected["unit_b"])) if mark else set()

    def unit_cell(side: int, unit: int, cluster: int) -> html.Td:
        text = f"u{unit} (H{cluster})"
        if keys is None:
            return html.Td(text)
        (m, layer, state), other = keys[side], keys[1 - side]
        return html.Td(dcc.Link(text, href=unit_href(m, layer, state, unit, None, other[0], other[1]),
                                className="unit-link"))

    def row(i: int, r) -> html.Tr:
        at_chance = chance_max is not None and abs(r.correlation) <= chance_max
        cls = "match-row" + (" selected" if (r.unit_a, r.unit_b) in chosen else "") + (" chance" if at_chance else "")
        cells = [html.Td(str(i + 1)), unit_cell(0, int(r.unit_a), int(r.cluster_a)),
                 unit_cell(1, int(r.unit_b), int(r.cluster_b)), html.Td(f"{r.correlation:+.3f}")]
        if chance_max is not None:
            cells.append(html.Td("≤ chance" if at_chance else "above", className="muted" if at_chance else ""))
        return html.Tr(cells, className=cls)

    rows = [row(i, r) for i, r in enumerate(pairs.head(TOP_PAIRS).itertuples())]
    if chosen:   # a clicked pair further down the ranking: shown too, after a gap, with its rank
        extra = [(i, r) for i, r in enumerate(pairs.itertuples()) if i >= TOP_PAIRS and (r.unit_a, r.unit_b) in chosen]
        if extra:
            width = 5 if chance_max is not None else 4
            rows.append(html.Tr(html.Td(f"… {extra[0][0] - TOP_PAIRS} more pairs …" if extra[0][0] > TOP_PAIRS
                                        else "…", colSpan=width, className="muted small"), className="match-gap"))
            rows += [row(i, r) for i, r in extra]
    head = [html.Th("#"), html.Th(f"unit of {name_a}"), html.Th(f"unit of {name_b}"), html.Th("r")]
    if chance_max is not None:
        head.append(html.Th("vs chance"))
    return html.Table([html.Thead(html.Tr(head)), html.Tbody(rows)], className="table matches-table")


def chance_sentence(m: dict) -> str:
    """'chance: |r| up to 0.22 (...); 3 of 8 matched pairs above it' for a matching with its baseline."""
    c = m["chance"]
    n = len(m["pairs"])
    return (f"chance: |r| up to {c['level']:.2f} (the same matching after shuffling the "
            f"{m['overlap']['shared_words']} shared words, each order applied to A and to B: 95th percentile of the "
            f"best |r| of {c['shuffles']} shuffles, seed {c.get('seed', 0)}); "
            f"{c['above']} of {n} matched pairs above it")


def _name(model: str, layer: int) -> str:
    return f"{model} L{layer}"


def compare_view(reader: Reader, a: str | None, layer_a: int | None, b: str | None, layer_b: int | None,
                 state: str | None, k: int | None, nwords: int = 15, pair: dict | None = None,
                 words: Sequence[str] = ()) -> tuple[Any, Any, Any, Any, Any, Any]:
    """(cluster fig A, cluster fig B, matched list, overlap summary, contingency fig, matched-|r| fig, alert)."""
    empty = figures.message_figure("Pick two models.")
    if not a or not b or layer_a is None or layer_b is None or not state:
        return empty, empty, [], [], empty, empty, []

    def run() -> tuple[Any, Any, Any, Any, Any, Any, Any]:
        ka = (a, int(layer_a), state)
        kb = (b, int(layer_b), state)
        va, vb = reader.clusters(*ka, int(k or 6)), reader.clusters(*kb, int(k or 6))
        name_a, name_b = _name(a, int(layer_a)), _name(b, int(layer_b))
        msg: Any = []
        try:
            m = reader.matching(ka, kb, int(k or 6))
        except ValueError as e:
            m, msg = None, alert(str(e), kind="info")
        hl_a: tuple[int, ...] = ()
        hl_b: tuple[int, ...] = ()
        listing: Any = []
        overlap: Any = []
        ofig = figures.message_figure("No matching.")
        mfig = figures.message_figure("No matching.", height=120)
        if m is not None:
            hl_a, hl_b, sel = _highlights(m["pairs"], pair)
            listing = html.Div([html.P(chance_sentence(m), className="chance-note small"),
                                pairs_table(m["pairs"], sel, name_a, name_b, mark=bool(pair),
                                            chance_max=m["chance"]["level"], keys=(ka, kb))])
            mfig = figures.matched_r_figure(m["pairs"], m["chance"], name_a, name_b)
            o = m["overlap"]
            overlap = html.Div([
                html.Span(f"{o['pairs']} matched unit pairs over {o['shared_words']} shared words · "),
                html.Span(f"mean |r| {m['pairs']['correlation'].abs().mean():.2f} "
                          f"(shuffled words: {m['chance']['mean']:.2f}) · "),
                html.Span(f"cluster overlap (k = {m['k']}): adjusted Rand {o['adjusted_rand']:.2f}, "
                          f"NMI {o['nmi']:.2f}")], className="overlap-summary")
            ofig = figures.contingency_figure(m["contingency"], name_a, name_b)
        word = next((w for w in words if w), None)
        figs = []
        for model, layer, view, hl, name in ((a, layer_a, va, hl_a, name_a), (b, layer_b, vb, hl_b, name_b)):
            resp = None
            if word:
                d = reader.word_detail(model, int(layer), state, word)
                if len(d):
                    resp = np.zeros(len(view.units))
                    resp[d["unit"].to_numpy()] = d["mean"].to_numpy()
            figs.append(figures.cocluster_figure(view.words, view.units, view.edges, figures.CoclusterOptions(
                nwords=int(nwords or 15), highlight_units=hl, title=f"{name} · {state} · k = {view.k}",
                cloud_width=18.0, link_gap=5.0, pos_legend=False,
                clip=reader.typical_response(model, int(layer), state),
                purity=reader.purity(model, int(layer), state, int(k or 6))["clusters"],
                word=word if resp is not None else None, word_response=resp, selected_words=(word,) if word else ())))
        return figs[0], figs[1], listing, overlap, ofig, mfig, msg

    return guarded(run, lambda al: (empty, empty, [], [], empty, empty, al), reader, PAGE)


def handle_click(click: dict | None, side: str, current: dict | None) -> tuple[dict, list[str] | None]:
    """A click on cluster view ``side`` ('a' or 'b') -> (selected pair, words) ; words None = unchanged."""
    points = event_points(click)
    cd = points[0].get("customdata") if points else None
    if isinstance(cd, list) and len(cd) >= 2 and cd[0] == "unit":
        try:
            unit = int(cd[1])
        except (TypeError, ValueError, OverflowError):  # a forged event: nothing changes
            return dict(current or {}), None
        if current and current.get("side") == side and current.get("unit") == unit:
            return {}, None
        return {"side": side, "unit": unit}, None
    if isinstance(cd, list) and len(cd) >= 2 and cd[0] == "word":
        return dict(current or {}), [str(cd[1])]
    return dict(current or {}), None


def detail_pair(reader: Reader, a: str | None, layer_a: int | None, b: str | None, layer_b: int | None,
                state: str | None, words: Sequence[str]) -> tuple[Any, Any]:
    """Box plots of the selected word in A and in B (each sorted by its own medians)."""
    word = next((w for w in words or [] if w), None)
    if not word or not a or not b or layer_a is None or layer_b is None or not state:
        f = figures.message_figure("Click a word in either view to compare the responses to it.")
        return f, f

    def run() -> tuple[Any, Any]:
        out = []
        for model, layer in ((a, layer_a), (b, layer_b)):
            d = reader.word_detail(model, int(layer), state, word)
            fig = figures.detail_figure({word: d}) if len(d) else figures.message_figure(
                f"“{word}” is not in {model}'s vocabulary.")
            fig["layout"].update(title=figures.title(figures.esc(f"{_name(model, int(layer))}: responses to “{word}”"),
                                                     size=13), height=300)
            fig["layout"]["margin"] = {**fig["layout"].get("margin", {}), "t": figures.top_margin(2)}
            out.append(fig)
        return out[0], out[1]

    f = figures.message_figure("No detail.")
    return guarded(run, lambda al: (f, f), reader, PAGE)


def gradient(reader: Reader, a: str | None, b: str | None) -> Any:
    return guarded(lambda: figures.gradient_flow_figure(reader.gradient_flow([m for m in (a, b) if m])),
                   lambda al: figures.message_figure("No gradient flow."), reader, PAGE)


def url_search(a: str | None, layer_a: int | None, b: str | None, layer_b: int | None, state: str | None,
               k: int | None, nwords: int | None, words: Sequence[str] | None) -> str:
    return to_query(ViewState(model=a, layer=layer_a, state=state, k=int(k or 6), nwords=int(nwords or 20),
                              words=tuple(w for w in (words or []) if w)[:1], model_b=b, layer_b=layer_b))


def matches_csv(reader: Reader, a: str, layer_a: int, b: str, layer_b: int, state: str, k: int) -> pd.DataFrame:
    m = reader.matching((a, int(layer_a), state), (b, int(layer_b), state), int(k))
    return m["pairs"].assign(model_a=a, layer_a=int(layer_a), model_b=b, layer_b=int(layer_b), state=state)


def word_options(reader: Reader, a: str | None, layer_a: int | None, b: str | None, layer_b: int | None,
                 state: str | None, k: int | None, current: str | None) -> list[dict]:
    """Dropdown options: the words co-clustered in either view."""
    words: set[str] = {current} if current else set()
    for model, layer in ((a, layer_a), (b, layer_b)):
        if model and layer is not None and state:
            try:
                words |= set(reader.clusters(model, int(layer), state, int(k or 6)).words["word"].astype(str))
            except Exception:  # noqa: BLE001 - the view callback already reports the problem
                continue
    return [{"label": w, "value": w} for w in sorted(words)]
