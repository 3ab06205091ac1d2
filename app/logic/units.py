"""The unit page (``/unit``) and the "Find units" box: plain functions of the reader and the inputs.

The page is drawn once from its URL (model, layer, state, unit; ``k`` for its cluster, ``b``/``layer_b`` for
the model its matched unit is looked up in); links lead to other units, to Explore and to Compare.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dash import dcc, html

from analytics.unit_summaries import TAG_NAMES
from app import figures, ids
from app.figures import units as ufig
from app.logic.common import alert
from app.reader import Reader
from app.reader.units import FIND_MODES, histogram
from app.urlstate import K_DEFAULT, ViewState, href

PAGE = "/unit"
FIND_HELP = {"word": "a word: the units responding most to it (s(w), highest first)",
             "tag": "a gold POS tag (NOUN, VERB, ADJ, ., ...): the most selective units (z)",
             "text": "a term of the one-line descriptions (e.g. punctuation, NOUN, a word)"}


def unit_href(model: str, layer: int, state: str, unit: int, k: int | None = None, model_b: str | None = None,
              layer_b: int | None = None) -> str:
    """The address of a unit's page."""
    return href(PAGE, ViewState(model=model, layer=int(layer), state=state, unit=int(unit), k=k or K_DEFAULT,
                                model_b=model_b, layer_b=layer_b))


# ------------------------------------------------------------------ Find units
def find_box(text_id: str, mode_id: str, go_id: str, results_id: str, mode: str = "word") -> html.Div:
    """The box: a text field, what it is (word, tag or description term), a button and the result list."""
    return html.Div([
        html.H4("Find units"),
        dcc.RadioItems(id=mode_id, options=[{"label": " word", "value": "word"}, {"label": " POS tag", "value": "tag"},
                                            {"label": " description", "value": "text"}],
                       value=mode, inline=True),
        html.Div([dcc.Input(id=text_id, type="text", maxLength=100, debounce=True, placeholder="not, NOUN, ...",
                            className="find-text"),
                  html.Button("Find", id=go_id, n_clicks=0, className="btn")], className="button-row"),
        html.Div(id=results_id, className="find-results"),
    ], className="find-units")


def find_results(reader: Reader, model: str | None, mode: str | None, text: str | None, k: int | None = None
                 ) -> Any:
    """The ranked units as links to their pages, or a line saying why there are none."""
    text = (text or "").strip()
    if not model:
        return html.P("Pick a model first.", className="muted small")
    if not text:
        return html.P("Type " + FIND_HELP.get(mode or "word", FIND_HELP["word"]) + ".", className="muted small")
    mode = mode if mode in FIND_MODES else "word"
    try:
        df = reader.find_units(model, mode, text)
    except Exception as e:  # noqa: BLE001 - a message, never a traceback
        return alert(f"Find units: {e}", kind="info")
    if df.empty:
        what = {"word": f"“{text}” is not in {model}'s vocabulary",
                "tag": f"no unit has a selectivity for tag “{text}” (no gold tags, or an unknown tag)",
                "text": f"no description mentions “{text}”"}[mode]
        return html.P(what + ".", className="muted small")
    label = {"word": "s(w)", "tag": "z", "text": "top tag z"}[mode]
    items = [html.Li([dcc.Link(f"L{r.layer} {r.state} #{r.unit}", href=unit_href(model, r.layer, r.state, r.unit, k),
                               className="unit-link"),
                      html.Span(f" {label} {r.score:.3g} " if pd.notna(r.score) else " ", className="muted small"),
                      html.Span(str(r.description or ""), className="small")])
             for r in df.itertuples()]
    return html.Ol(items, className="find-list")


# ------------------------------------------------------------------ the page
def _context_row(row: Any, scale: float) -> html.Div:
    """One top context: ±CONTEXT tokens, the centre token shaded by the unit's value there."""
    spans = []
    for offset, word in row.tokens:
        if offset == 0:
            a = min(1.0, abs(row.value) / scale) if scale > 0 else 0.0
            rgb = "214,39,40" if row.value >= 0 else "31,119,180"
            spans.append(html.Span(word, className="ctx-center", title=f"value {row.value:.4g}",
                                   style={"backgroundColor": f"rgba({rgb},{0.15 + 0.75 * a:.2f})"}))
        else:
            spans.append(html.Span(word, className="ctx-token"))
    return html.Div([html.Span(f"{row.value:+.3f}", className="ctx-value"), html.Span(spans, className="ctx-text")],
                    className="ctx-row")


def _contexts_section(ctx: pd.DataFrame) -> html.Section:
    head = html.Div([html.H4("Top contexts"), html.Span(
        "the 20 positions of the analysed split with the highest and lowest value (h: the state itself; Δh: its "
        "change from the previous token), ±8 tokens; the centre token is shaded by the unit's value there "
        "(the neighbours' values are not stored, so they are not shaded)", className="muted small")],
        className="card-head")
    if ctx.empty:
        return html.Section([head, html.P("No top contexts stored: the model was analysed before they existed; "
                                          "analyse it again.", className="muted")], className="card")
    columns = []
    for kind, name in (("h_top", "highest h"), ("h_bottom", "lowest h"), ("dh_top", "largest Δh"),
                       ("dh_bottom", "smallest Δh")):
        rows = ctx[ctx["kind"] == kind].sort_values("rank")
        scale = float(np.abs(ctx.loc[ctx["kind"].str[:2] == kind[:2], "value"]).max() or 1.0)
        columns.append(html.Div([html.H5(name)] + [_context_row(r, scale) for r in rows.itertuples()],
                                className="ctx-column", id=f"unit-ctx-{kind}"))
    return html.Section([head, html.Div(columns, className="ctx-grid")], className="card")


def _where(reader: Reader, vs: ViewState, model: str, layer: int, state: str, unit: int) -> html.Section:
    """Its cluster at k (linked to Explore), its matched unit in another model, its ablation."""
    items: list[Any] = []
    try:
        view = reader.clusters(model, layer, state, vs.k)
        cluster = int(view.units.set_index("unit").loc[unit, "cluster"])
        explore = href("/explore", ViewState(model=model, layer=layer, state=state, k=view.k, unit=unit))
        items.append(html.Li(["Cluster ", dcc.Link(f"H{cluster} at k = {view.k}", href=explore, id="unit-explore-link"),
                              " (opens Explore with the unit's cell selected)"]))
    except Exception as e:  # noqa: BLE001 - a line, never a traceback
        items.append(html.Li(f"No co-cluster for this view ({e})."))
    items.append(html.Li(_matched(reader, vs, model, layer, state, unit)))
    abl = reader.unit_ablations(model, layer, state, unit)
    if abl.empty:
        items.append(html.Li("No stored ablation covers this unit (the analysis ablates the last layer's clusters)."))
    for r in abl.itertuples():
        z = f", z {r.z:.1f}, p {r.p:.2g}" if pd.notna(r.z) else ""
        items.append(html.Li(f"Ablating its cluster {r.cluster} at k = {r.k} ({r.size} units, {r.mode}) changes "
                             f"the mean {r.measure} by {r.delta_mean:+.4g} (random sets of that size: "
                             f"{r.baseline_mean:+.4g} ± {r.baseline_std:.2g}{z})."))
    return html.Section([html.Div([html.H4("Where it sits")], className="card-head"), html.Ul(items)],
                        className="card")


def _matched(reader: Reader, vs: ViewState, model: str, layer: int, state: str, unit: int) -> list:
    others = [m for m in reader.model_ids() if m != model]
    if not vs.model_b:
        if not others:
            return ["No other model to match it in."]
        return ["Its matched unit (Compare's matching) in: "] + [
            dcc.Link(m, href=unit_href(model, layer, state, unit, vs.k, m, layer), className="match-pick")
            for m in others[:8]]
    layer_b = vs.layer_b if vs.layer_b is not None else layer
    try:
        pairs = reader.unit_pairs((model, layer, state), (vs.model_b, layer_b, state))["pairs"]
        row = pairs[pairs["unit_a"] == unit]
        if row.empty:
            return [f"Not matched in {vs.model_b} (it has fewer units)."]
        ub, r = int(row["unit_b"].iloc[0]), float(row["correlation"].iloc[0])
        cmp = href("/compare", ViewState(model=model, layer=layer, state=state, model_b=vs.model_b, layer_b=layer_b))
        return ["Matched to ", dcc.Link(f"{vs.model_b} L{layer_b} {state} #{ub}",
                                        href=unit_href(vs.model_b, layer_b, state, ub, vs.k), id="unit-match-link"),
                f" (r = {r:.2f} over the shared words; ", dcc.Link("Compare", href=cmp), ")"]
    except Exception as e:  # noqa: BLE001 - a line, never a traceback
        return [f"No matching with {vs.model_b}: {e}"]


def _tag(tag: object) -> str:
    return TAG_NAMES.get(str(tag), str(tag))


def _summary(summ: dict | None, tags: pd.DataFrame) -> html.Div:
    if summ is None:
        return html.Div(alert("No unit summary stored: the model was analysed before unit pages existed; analyse it "
                              "again.", kind="info"))
    parts = [html.P(str(summ["description"]), className="unit-description", id="unit-description")]
    if not tags.empty and summ.get("top_tag"):
        parts.append(html.P(f"Most selective gold tag: {_tag(summ['top_tag'])} (z {summ['top_tag_z']:.1f}); least: "
                            f"{_tag(summ['bottom_tag'])} (z {summ['bottom_tag_z']:.1f}).", className="small"))
    elif tags.empty:
        parts.append(html.P("No gold tags for this corpus: no POS selectivity.", className="muted small"))
    return html.Div(parts)


def page(reader: Reader, vs: ViewState, model: str, layer: int, state: str, unit: int) -> list:
    """The page's sections."""
    summ = reader.unit_summary(model, layer, state, unit)
    tags = reader.unit_tags(model, layer, state, unit)
    edges, counts = histogram(reader.unit_distribution(model, layer, state, unit))
    mean = float(summ["mean"]) if summ else float("nan")
    std = float(summ["std"]) if summ else float("nan")
    words = reader.unit_words(model, layer, state, unit)
    return [
        html.H2(f"{model} · layer {layer} · {state} · unit {unit}"),
        _summary(summ, tags),
        _contexts_section(reader.unit_contexts(model, layer, state, unit)),
        html.Div([
            html.Section([dcc.Graph(id=ids.UNIT_HISTOGRAM, figure=ufig.histogram_figure(edges, counts, mean, std, unit),
                                    config={"displaylogo": False}),
                          html.P("Approximate histogram: each word's stored quantiles (q10, q25, q50, q75, q90) each "
                                 "stand for a fifth of its occurrences; the mean and std (shaded: mean ± std) are "
                                 "exact. For h and c the response is the update Δh, as everywhere in the statistics.",
                                 className="muted small")], className="card"),
            html.Section([dcc.Graph(id=ids.UNIT_TAGS, figure=ufig.tags_figure(tags, unit),
                                    config={"displaylogo": False}),
                          html.P("Tokens grouped by their word's most frequent gold tag; z: Welch's statistic "
                                 "against every other token.", className="muted small")], className="card"),
        ], className="unit-pair"),
        html.Section([dcc.Graph(id=ids.UNIT_WORDS, figure=figures.unit_words_figure(words, unit),
                                config={"displaylogo": False})], className="card"),
        _where(reader, vs, model, layer, state, unit),
    ]
