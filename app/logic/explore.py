"""Explore: the co-cluster view, sentence glyphs and the detail view, as plain functions.

Each function takes the :class:`~app.reader.Reader` and the callback's input
values and returns the callback's outputs; :mod:`app.pages.explore` wires
them to component ids. Errors a user can act on come back as an alert.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import html

from app import figures
from app.logic import notes as team_notes
from app.logic.common import (
    STATE_LABELS,
    alert,
    error_alert,
    event_points,
    guarded,
    layer_options,
    pick_layer_state,
)
from app.reader import Reader
from app.urlstate import K_MAX, K_MIN, MAX_SENTENCES, MAX_WORDS

log = logging.getLogger(__name__)
PAGE = "/explore"
NO_ALERT: list = []
SEARCH_LIMIT = 50    # vocabulary words offered for what the user typed


def _opts(options: Sequence[str] | None) -> tuple[bool, bool]:
    options = options or []
    return "pos" in options, "align" in options


def _glyphs_of(reader: Reader, model: str, layer: int, state: str, k: int, sentences: Sequence[str] | None
               ) -> tuple[dict, ...]:
    """The glyph data of the model's sentences among ``sentences`` (others' and missing ones left out)."""
    out = []
    for sid in sentences or []:
        meta = reader.sentence(sid)
        if meta is None or meta["model_id"] != model:
            continue
        g = reader.glyphs(sid, layer, state, k)
        if g is not None:
            out.append(g)
    return tuple(out)


def auto_clip(reader: Reader, model: str, layer: int, state: str) -> float:
    """Default colour clip for the view, as the clip slider's log10 value (a step of 0.25)."""
    return float(np.clip(round(np.log10(reader.typical_response(model, layer, state)) * 4) / 4, -3.0, 0.5))


def controls_for_model(reader: Reader, model: str | None, layer: int | None, state: str | None
                       ) -> tuple[list, int | None, list, str | None, int, float, Any]:
    """Model changed: (layer options, layer, state options, state, k max, colour clip (log10), alert)."""
    if not model:
        return [], None, [], None, K_MAX, -1.0, alert("The store has no analysed model yet: train one with "
                                                  "`rnnvis train` or `make demo`.")
    try:
        reader.require_analysis(model)
        reader.prefetch(model)
        layers, states = layer_options(reader, model)
        lay, st = pick_layer_state(reader, model, layer, state)
        ks = reader.ks(model)
        return (layers, lay, states, st, max(K_MIN, min(K_MAX, max(ks) if ks else K_MAX)),
                auto_clip(reader, model, lay, st), NO_ALERT)
    except Exception as e:  # noqa: BLE001 - shown to the user
        return [], None, [], None, K_MAX, -1.0, error_alert(e, reader, PAGE)


def cluster_view(reader: Reader, model: str | None, layer: int | None, state: str | None, k: int | None,
                 nwords: int = 20, stroke: float = 1.0, links: Sequence[float] | None = (0.1, 1.0),
                 clip: float = -1.0, options: Sequence[str] | None = ("pos", "align"),
                 words: Sequence[str] | None = (), selection: dict | None = None,
                 sentences: Sequence[str] | None = ()) -> tuple[Any, Any]:
    """(co-cluster figure, summary children).

    links: range of |e| relative to the strongest link; clip: log10 of the colour clip value; with "glyphs" in
    ``options``, the glyphs of ``sentences`` are drawn left of the chips, each cluster's row beside its chip.
    """
    if not model or layer is None or not state:
        return figures.message_figure("Pick a model."), ""

    def run() -> tuple[Any, Any]:
        view = reader.clusters(model, int(layer), state, int(k or 6))
        words_l = [w for w in (words or []) if w]
        first = words_l[0] if words_l else None
        word_resp = _word_response(reader, model, int(layer), state, first, len(view.units))
        pur = reader.purity(model, int(layer), state, int(k or 6))
        glyphs = _glyphs_of(reader, model, int(layer), state, view.k, sentences) if "glyphs" in (options or []) else ()
        pos, align = _opts(options)
        sel = selection or {}
        noted = team_notes.chip_notes(reader.root, model, int(layer), state, view.k)   # the team's notes
        opts = figures.CoclusterOptions(
            nwords=int(nwords or 20), stroke=float(stroke or 1.0),
            links=tuple(links) if links else (0.0, 1.0), pos=pos, align=align,
            clip=float(10 ** float(clip if clip is not None else -1.0)),
            word=first if word_resp is not None else None, word_response=word_resp,
            selected_words=tuple(words_l), chip=sel.get("chip"), cloud=sel.get("cloud"), purity=pur["clusters"],
            highlight_units=(int(sel["unit"]),) if sel.get("unit") is not None else (),   # the unit picked: outlined
            glyphs=glyphs, cloud_width=figures.CLOUD_W * (0.6 if glyphs else 1.0),   # glyphs: narrower clouds
            link_gap=figures.LINK_GAP * (0.7 if glyphs else 1.0), chip_notes=noted[0], unit_notes=noted[1])
        fig = figures.cocluster_figure(view.words, view.units, view.edges, opts)
        return fig, _cluster_summary(model, state, k, view, pur)

    return guarded(run, lambda a: (figures.message_figure("Nothing to draw."), a), reader, PAGE)


def _word_response(reader: Reader, model: str, layer: int, state: str, word: str | None,
                   n_units: int) -> np.ndarray | None:
    """Each unit's mean response to ``word`` [H], or None (no word, or not in the vocabulary)."""
    if word is None:
        return None
    d = reader.word_detail(model, layer, state, word)
    if not len(d):
        return None
    resp = np.zeros(n_units)
    resp[d["unit"].to_numpy()] = d["mean"].to_numpy()
    return resp


def _cluster_summary(model: str, state: str, k: int | None, view: Any, pur: dict[str, Any]) -> html.Span:
    """The line above the co-cluster figure: what it shows, its size, and the clusters' POS purity."""
    n_units = view.units.groupby("cluster").size()
    k_note = f" (nearest stored k to {k})" if k is not None and int(k) != view.k else ""
    return html.Span([
        html.B(f"{model}"), f" · layer {view.layer} · state {state} · k = {view.k}{k_note} · ",
        f"{len(view.words)} co-clustered words · {int(n_units.size)} memory chips · ",
        f"strongest link |e| = {view.max_abs:.3g}", html.Br(), state_note(state, view.cluster_state),
        *empty_cluster_note(view), html.Br(), purity_summary(pur)],
        className="summary")


def word_options(reader: Reader, model: str | None, layer: int | None, state: str | None, k: int | None,
                 search: str | None, selected: Sequence[str] | None = ()) -> list[dict]:
    """Options of the word picker: the selected words, then what the user is typing searched in the model's whole
    vocabulary (:meth:`Reader.search_words`), or, before any typing, the view's co-clustered words."""
    chosen = [w for w in (selected or []) if w]
    found: list[str] = []
    if model:
        try:
            if search and search.strip():
                found = reader.search_words(model, search, limit=SEARCH_LIMIT)
            elif layer is not None and state:
                found = sorted(set(reader.clusters(model, int(layer), state, int(k or 6)).words["word"].astype(str)))
        except Exception as e:  # noqa: BLE001 - the view callbacks report an unknown model; the picker just stays
            log.info("word options for %s: %s", model, e)
    return [{"label": w, "value": w} for w in dict.fromkeys(chosen + found)]


#: States whose response is a change Δs_t = s_t − s_(t−1); a gate's response is its activation (analytics.lm_trace).
UPDATE_STATES = ("h", "c")


def response_name(state: str) -> str:
    """'mean |Δh|' for h and c, 'mean f activation |f|' for a gate: what a word's response to a state is."""
    return f"mean |Δ{state}|" if state in UPDATE_STATES else f"mean |{state}| (the gate's activation)"


def state_note(state: str, cluster_state: str) -> html.Span:
    """What the view clusters and what sizes its words, for ``state`` (a gate borrows the clustering of h)."""
    name = STATE_LABELS.get(state, state)
    size = f"a word's size: its {response_name(state)} towards its cloud's chip"
    if cluster_state != state:
        return html.Span(["Gates are not co-clustered: the chips and clouds are ", html.B(f"the co-clusters of "
                          f"{STATE_LABELS.get(cluster_state, cluster_state)}"), "; word size, links and cell shading "
                          f"show the activations of {name} ({size})."], className="state-note")
    return html.Span([f"Co-clusters of {name}; {size}."], className="state-note")


def empty_cluster_note(view) -> list:
    """['; 5 of 6 word clusters have no units ...'] when co-clustering left unit clusters (or word clusters) empty."""
    chips = set(view.units["cluster"].unique().tolist())
    clouds = set(view.words["cluster"].unique().tolist())
    lone_clouds = sorted(clouds - chips)
    lone_chips = sorted(chips - clouds)
    parts = []
    if lone_clouds:
        parts.append(f"{len(lone_clouds)} of {len(clouds)} word clusters have no units "
                     f"({', '.join(f'W{i}' for i in lone_clouds)}: co-clustering left their unit clusters empty, "
                     "so they have no chip and their words are drawn at the smallest size)")
    if lone_chips:
        parts.append(f"{len(lone_chips)} of {len(chips)} unit clusters have no words "
                     f"({', '.join(f'H{j}' for j in lone_chips)})")
    return [html.Br(), html.Span("Empty clusters: " + "; ".join(parts) + ". A smaller k may split them better.",
                                 className="empty-note")] if parts else []


def purity_summary(pur: dict) -> html.Span:
    """'POS purity 0.42 · chance 0.35 ± 0.01 (tags shuffled) · ...' for the whole clustering of the view."""
    p = pur.get("overall")
    if p is None:
        return html.Span(f"POS purity: not available, {pur.get('reason') or 'no tags'}", className="purity muted")
    z = "" if not np.isfinite(p.z) else f", {p.z:+.1f} sd"
    return html.Span([html.B(f"POS purity {p.purity:.2f}"),
                      f" · chance {p.shuffled:.2f} ± {p.shuffled_std:.3f} (tags shuffled over the {p.words} "
                      f"tagged clustered words{z})"],
                     className="purity", title="share of clustered words whose POS tag is their cluster's majority "
                                               "tag; chance keeps the cluster sizes and the tag counts and shuffles "
                                               "which word has which tag")


def _clicked(click: dict | None) -> list | None:
    """The customdata of the clicked point (["word", w, cluster], ["unit", u, chip], ...), or None."""
    points = event_points(click)
    cd = points[0].get("customdata") if points else None
    return cd if isinstance(cd, list) and cd else None


def _select_chip(sel: dict, chip: int) -> dict:
    """A click on a chip's label selects it; a second one (no unit picked in it) clears."""
    return {} if sel.get("chip") == chip and "unit" not in sel else {"chip": chip}


def handle_click(click: dict | None, words: Sequence[str] | None, selection: dict | None
                 ) -> tuple[list[str], dict, str]:
    """A click on the co-cluster figure -> (selected words, selection, detail mode)."""
    words_l = [w for w in (words or []) if w]
    sel = dict(selection or {})
    cd = _clicked(click)
    if cd is None:
        return words_l, sel, dash.no_update
    try:
        return _apply_click(cd, words_l, sel)
    except (TypeError, ValueError, OverflowError):  # a forged event: nothing changes
        return words_l, sel, dash.no_update


def _apply_click(cd: list, words_l: list[str], sel: dict) -> tuple[list[str], dict, str]:
    kind, n = cd[0], len(cd)
    if kind == "word" and n >= 2:
        w = str(cd[1])
        return ([w] + [x for x in words_l if x != w])[:MAX_WORDS], sel, "word"
    if kind == "unit" and n >= 3:
        return words_l, {"chip": int(cd[2]), "unit": int(cd[1])}, "unit"
    if kind == "chip" and n >= 2:
        sel = _select_chip(sel, int(cd[1]))
    elif kind == "cloud" and n >= 2:
        cloud = int(cd[1])
        sel = {} if sel.get("cloud") == cloud else {"cloud": cloud}
    return words_l, sel, dash.no_update


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"“{w}”" for w in words)


def words_picked(words: Sequence[str] | None) -> tuple[Any, Any]:
    """The word picker changed: (its value, message). A pick beyond MAX_WORDS is refused and said so; removing a
    word clears the message; three words leave both as they are (a click's message stays)."""
    words_l = [w for w in (words or []) if w]
    if len(words_l) > MAX_WORDS:
        kept, refused = words_l[:MAX_WORDS], words_l[MAX_WORDS:]
        return kept, alert(f"The detail view compares at most {MAX_WORDS} words: {_quoted(refused)} not added. "
                           f"Remove one of {_quoted(kept)} first.", kind="info")
    return dash.no_update, ("" if len(words_l) < MAX_WORDS else dash.no_update)


def click_words_note(before: Sequence[str] | None, after: Any) -> Any:
    """The message after a click on a word: which word (the oldest) it replaced, if the picker was full."""
    if not isinstance(after, list) or not after:
        return dash.no_update
    dropped = [w for w in (before or []) if w and w not in after]
    if not dropped:
        return ""
    return alert(f"At most {MAX_WORDS} words: {_quoted(after[:1])} replaced the oldest, {_quoted(dropped)}.",
                 kind="info")


def detail_view(reader: Reader, model: str | None, layer: int | None, state: str | None,
                words: Sequence[str] | None, mode: str | None, selection: dict | None) -> tuple[Any, Any]:
    """(detail figure, message): box plots for the selected words, or a unit's most/least words."""
    if not model or layer is None or not state:
        return figures.message_figure("Pick a model."), ""

    def run() -> tuple[Any, Any]:
        unit = (selection or {}).get("unit")
        if mode == "unit":
            if unit is None:
                return figures.message_figure("Click a memory cell to see the words its unit responds to."), ""
            df = reader.unit_words(model, int(layer), state, int(unit))
            return figures.unit_words_figure(df, int(unit)), ""
        details: dict[str, pd.DataFrame] = {}
        missing = []
        for w in list(words or [])[:MAX_WORDS]:
            d = reader.word_detail(model, int(layer), state, w)
            if len(d):
                details[w] = d
            else:
                missing.append(w)
        msg = (alert(f"Not in {model}'s vocabulary: {', '.join(missing)}", kind="info") if missing else "")
        return figures.detail_figure(details, unit=int(unit) if unit is not None else None), msg

    return guarded(run, lambda a: (figures.message_figure("No detail."), a), reader, PAGE)


def add_sentence(reader: Reader, model: str | None, text: str | None, sentences: Sequence[str] | None,
                 created_by: str = "anonymous") -> tuple[list[str], Any, str]:
    """Evaluate and store a sentence: (sentence ids, message, new textarea value)."""
    ids = [s for s in (sentences or []) if s]
    if not model:
        return ids, alert("Pick a model first."), text or ""
    try:
        sid = reader.add_sentence(model, text or "", created_by=created_by)
    except Exception as e:  # noqa: BLE001 - empty/too long/unknown model: a message, the text stays
        return ids, error_alert(e, reader, PAGE), text or ""
    ids = [s for s in ids if s != sid] + [sid]
    if len(ids) > MAX_SENTENCES:
        ids = ids[-MAX_SENTENCES:]
    return ids, "", ""


def glyph_view(reader: Reader, model: str | None, layer: int | None, state: str | None, k: int | None,
               sentences: Sequence[str] | None) -> tuple[Any, list]:
    """(glyph figure, list of the sentences shown with their prediction) for the current model."""
    if not model or layer is None or not state:
        return figures.glyph_figure([]), []

    def run() -> tuple[Any, list]:
        items, listing, other = [], [], 0
        for sid in sentences or []:
            meta = reader.sentence(sid)
            if meta is None:
                listing.append(html.Li(f"sentence {sid} is not in the store (deleted?)", className="muted"))
                continue
            if meta["model_id"] != model:
                other += 1
                continue
            g = reader.glyphs(sid, int(layer), state, int(k or 6))
            if g is None:
                continue
            pred, polarity = prediction_text(g)
            label = figures.sentence_label(len(items))     # S1, S2, ... as beside the chips
            g = dict(g, title=f"{label} · “{g['text']}”{pred}")
            items.append(g)
            unk = [o for t, o in zip(g["tokens"], g["original"]) if t == "<unk>"]
            listing.append(html.Li([html.B(f"{label} "), html.Span(f"“{g['text']}”", className="sentence-text"),
                                    html.Span(pred, className=f"prediction prediction-{polarity}"),
                                    html.Span(f"  ·  not in vocabulary: {', '.join(unk)}" if unk else "",
                                              className="muted")]))
        if other:
            listing.append(html.Li(f"{other} sentence(s) belong to another model and are hidden.", className="muted"))
        return figures.glyph_figure(items), listing

    return guarded(run, lambda a: (figures.glyph_figure([]), [a]), reader, PAGE)


POLARITY = {"positive": "positive", "pos": "positive", "negative": "negative", "neg": "negative"}


def prediction_text(g: dict) -> tuple[str, str]:
    """('  →  negative (p = 0.71)', 'negative') for a classifier's sentence, ('  →  next word “the” (p = 0.12)',
    'next') for a language model's; the second item names the colour (positive green, negative red, else ink)."""
    label, p = g.get("prediction"), g.get("probability")
    if label is None or p is None or (isinstance(p, float) and not np.isfinite(p)):
        return "", "none"
    if g.get("task") == "lm":
        return f"  →  next word “{label}” (p = {float(p):.2f})", "next"
    return f"  →  {label} (p = {float(p):.2f})", POLARITY.get(str(label).strip().lower(), "class")


def clusters_csv(reader: Reader, model: str, layer: int, state: str, k: int) -> pd.DataFrame:
    """The data behind the cluster view: one row per word and per unit, plus the edges."""
    v = reader.clusters(model, int(layer), state, int(k))
    w = v.words[["word_id", "word", "freq", "pos", "cluster", "strength"]].assign(axis="word", item=v.words["word_id"])
    u = v.units.assign(axis="unit", item=v.units["unit"], word=None)[["axis", "item", "word", "cluster", "strength"]]
    e = pd.DataFrame([{"axis": "edge", "item": j, "cluster": i, "strength": float(v.edges[i, j])}
                      for i in range(v.k) for j in range(v.k)])
    out = pd.concat([w.drop(columns=["word_id"]), u, e], ignore_index=True)
    for col in ("item", "freq", "cluster"):   # unit and edge rows have no freq: nullable ints, never 26.0
        out[col] = out[col].astype("Int64")
    out.insert(0, "k", v.k)
    out.insert(0, "state", state)
    out.insert(0, "layer", int(layer))
    out.insert(0, "model_id", model)
    return out[["model_id", "layer", "state", "k", "axis", "item", "word", "freq", "pos", "cluster", "strength"]]


def detail_csv(reader: Reader, model: str, layer: int, state: str, words: Sequence[str]) -> pd.DataFrame:
    """The data behind the detail view: unit statistics for each selected word."""
    frames = []
    for w in list(words or [])[:MAX_WORDS]:
        d = reader.word_detail(model, int(layer), state, w)
        if len(d):
            frames.append(d.assign(model_id=model, layer=int(layer), state=state, word=w))
    if not frames:
        return pd.DataFrame(columns=["model_id", "layer", "state", "word", "unit", "n", "mean", "std",
                                     "q10", "q25", "q50", "q75", "q90"])
    df = pd.concat(frames, ignore_index=True)
    return df[["model_id", "layer", "state", "word", "unit", "n", "mean", "std", "q10", "q25", "q50", "q75", "q90"]]
