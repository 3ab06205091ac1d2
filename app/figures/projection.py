"""The projection view: 2-D maps of the co-clustered words and of the units (PCA or t-SNE, precomputed).

Words are coloured by POS or by word cluster and sized by frequency; units are coloured by unit cluster. Two
models side by side share one plot: each map is scaled into a unit square and model B's sits right of model
A's, so that matched units (or the same selected word) are joined by plain line segments.

Every point's ``customdata`` is ``[axis, item, side]`` (axis 'word' or 'unit', item the word or the unit,
side 'a' or 'b'), which is what the page's click and lasso callbacks read.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from plotly.colors import qualitative

from .base import POS_COLORS, POS_NAMES, Figure, esc, message_figure, new_figure, title, top_margin

CLUSTER_COLORS = qualitative.Dark24          # k <= 20 clusters, one colour each
SIZE_MIN, SIZE_MAX = 6, 22                   # marker diameter (px) of the rarest and the most frequent word
LABELS = 25                                  # the most frequent words are labelled on the map
GAP = 0.25                                   # between the two squares of a side-by-side map
LINKS = 16                                   # side by side, no selection: links of the strongest matched pairs
# Labels are placed as if a map's plot area were this many px (narrower than the cards, so on screen they only
# spread further apart); a 10 px label is about CHAR_PX per character and LINE_PX high.
MAP_PX, UNIT_PX, PAIRED_PX = (440, 400), (420, 270), (300, 290)     # word map, unit map, either side by side
CHAR_PX, LINE_PX = 6.5, 13
SELECTED = "#111111"


def cluster_color(c: int) -> str:
    return CLUSTER_COLORS[int(c) % len(CLUSTER_COLORS)]


def _sizes(freq: np.ndarray) -> np.ndarray:
    """Marker sizes from frequencies, on a log scale between SIZE_MIN and SIZE_MAX."""
    f = np.log1p(np.maximum(np.asarray(freq, float), 0))
    span = f.max() - f.min() if len(f) else 0.0
    return SIZE_MIN + (SIZE_MAX - SIZE_MIN) * ((f - f.min()) / span if span > 0 else np.full(len(f), 0.5))


def _square(df: pd.DataFrame, dx: float = 0.0) -> pd.DataFrame:
    """The map scaled (aspect kept) into [0, 1]² and moved right by dx (a copy)."""
    out = df.copy()
    xy = out[["x", "y"]].to_numpy(float)
    lo = xy.min(0) if len(xy) else np.zeros(2)
    span = float((xy.max(0) - lo).max()) if len(xy) else 1.0
    xy = (xy - lo) / (span or 1.0)
    out["x"], out["y"] = xy[:, 0] + dx, xy[:, 1]
    return out


def _layout(fig_title: str, dragmode: str, height: int, legend: bool) -> dict:
    """Title above the plot, legend below it (clear of the toolbar), axes without ticks (a map's axes mean
    nothing but distance)."""
    axis = dict(showgrid=False, zeroline=False, showticklabels=False, title=None, linecolor="#cfd8dc", mirror=True)
    return dict(title=title(fig_title), height=height, dragmode=dragmode, hovermode="closest", clickmode="event",
                showlegend=legend, legend=dict(orientation="h", y=-0.01, yanchor="top", x=0, font=dict(size=11)),
                margin=dict(l=10, r=10, t=top_margin(1), b=40 if legend else 10), xaxis=axis, yaxis=dict(axis),
                uirevision=fig_title)


def declutter(x: Sequence[float], y: Sequence[float], texts: Sequence[str], order: Sequence[int],
              px: tuple[float, float] = MAP_PX) -> list[str]:
    """The labels to draw: taken in ``order`` (most wanted first), a label is kept only if its box, centred above
    its point, clears every label kept before; the others become ''. Hand-written: plotly places text labels
    without avoiding collisions, and they piled up ("with / by / for", units 41 / 44)."""
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    out = [""] * len(xa)
    if not len(xa):
        return out
    nx = (xa - xa.min()) / ((xa.max() - xa.min()) or 1.0) * px[0]
    ny = (ya - ya.min()) / ((ya.max() - ya.min()) or 1.0) * px[1]
    kept: list[tuple[float, float, float, float]] = []
    for i in order:
        if not texts[i]:
            continue
        half = (CHAR_PX * len(texts[i]) + 4) / 2
        box = (nx[i] - half, nx[i] + half, ny[i] + 3, ny[i] + 3 + LINE_PX)
        if all(box[1] <= k[0] or box[0] >= k[1] or box[3] <= k[2] or box[2] >= k[3] for k in kept):
            kept.append(box)
            out[i] = texts[i]
    return out


def _points(axis: str, side: str, items: list, x: list, y: list, name: str, color: str, selected: set,
            hover: list[str], size: list | float, text: list[str] | None = None) -> dict:
    """One scatter trace of map points (plain lists in, a trace dict out)."""
    trace = dict(type="scatter", mode="markers+text" if text else "markers", x=x, y=y, name=esc(name),
                 customdata=[[axis, i, side] for i in items], hovertext=hover, hoverinfo="text",
                 legendgroup=esc(name),
                 marker=dict(color=color, size=size, opacity=0.85, line=dict(width=0.5, color="#ffffff")),
                 selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.18)))
    if text:
        trace.update(text=text, textposition="top center", textfont=dict(size=10, color="#37474f"))
    if selected:
        trace["selectedpoints"] = [i for i, it in enumerate(items) if it in selected]
    return trace


def _word_traces(words: pd.DataFrame, color_by: str, selected: set, side: str = "a", legend: bool = True,
                 px: tuple[float, float] = MAP_PX) -> list[dict]:
    """One trace per colour (POS tag or word cluster); the columns are turned into lists once, then picked."""
    word = words["word"].astype(str).tolist()
    pos = words["pos"].fillna("").astype(str).tolist()
    cluster = words["cluster"].astype(int).tolist()
    freq = words["freq"].astype(np.int64).to_numpy()
    n = words["n"].astype(np.int64).tolist() if "n" in words else [0] * len(word)
    x, y = words["x"].astype(float).tolist(), words["y"].astype(float).tolist()
    sizes = _sizes(freq).tolist()
    label = {word[i] for i in np.argsort(-freq, kind="stable")[:LABELS]} | selected
    order = sorted(range(len(word)), key=lambda i: (word[i] not in selected, -int(freq[i])))   # selection first
    shown = declutter(x, y, [esc(w) if w in label else "" for w in word], order, px)
    hover = [f"<b>{esc(w)}</b><br>n = {nn:,} in the analysed split · frequency {int(f):,}<br>"
             f"POS {esc(POS_NAMES.get(p, p))} · cluster W{c}" for w, nn, f, p, c in zip(word, n, freq, pos, cluster)]
    keys = pos if color_by == "pos" else cluster
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    data = []
    for value in sorted(groups, key=lambda v: (v == "", v) if color_by == "pos" else (False, v)):
        idx = groups[value]
        if color_by == "pos":
            name, color = POS_NAMES.get(value, value), POS_COLORS.get(value, "#444444")
        else:
            name, color = f"W{value}", cluster_color(value)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731, B023 - used within this iteration
        t = _points("word", side, pick(word), pick(x), pick(y), name, color, selected, pick(hover), pick(sizes),
                    pick(shown))
        t["showlegend"] = legend
        data.append(t)
    return data


def _unit_traces(units: pd.DataFrame, selected: set, side: str = "a", legend: bool = True,
                 partner: dict[int, tuple[int, float]] | None = None, px: tuple[float, float] = UNIT_PX
                 ) -> list[dict]:
    data = []
    every = units["unit"].astype(int).tolist()
    order = sorted(range(len(every)), key=lambda i: (every[i] not in selected, every[i]))         # selection first
    text = [str(u) for u in every] if len(units) <= 80 else [""] * len(every)
    shown = dict(zip(every, declutter(units["x"].astype(float), units["y"].astype(float), text, order, px)))
    for c, g in units.groupby("cluster", sort=True):
        unit = g["unit"].astype(int).tolist()
        hover = [f"<b>unit {u}</b> · cluster H{int(c)}" + (
            f"<br>matched to unit {partner[u][0]} (r = {partner[u][1]:+.2f})" if partner and u in partner else "")
            for u in unit]
        t = _points("unit", side, unit, g["x"].astype(float).tolist(), g["y"].astype(float).tolist(), f"H{int(c)}",
                    cluster_color(c), selected, hover, 12.0, [shown[u] for u in unit] if any(text) else None)
        t["showlegend"] = legend
        data.append(t)
    return data


def word_map_figure(words: pd.DataFrame, color_by: str = "pos", selected: Sequence[str] = (),
                    dragmode: str = "lasso", heading: str = "") -> Figure:
    """The map of the co-clustered words.

    words: word, freq, n, pos, cluster, x, y. ``selected`` words are drawn at full strength and labelled, the
    others faded (plotly's selectedpoints); the most frequent LABELS words are labelled too.
    """
    if words.empty:
        return message_figure("No co-clustered words to place.")
    sel = {str(w) for w in selected}
    data = _word_traces(words, color_by, sel)
    by = "POS" if color_by == "pos" else "word cluster"
    text = heading or f"{len(words)} words by their responses · colour: {by} · size: frequency"
    return new_figure(data, _layout(text, dragmode, 560, True))


def unit_map_figure(units: pd.DataFrame, selected: Sequence[int] = (), dragmode: str = "lasso",
                    heading: str = "") -> Figure:
    """The dual map: each unit placed by its response profile over the co-clustered words, coloured by unit
    cluster. units: unit, cluster, x, y."""
    if units.empty:
        return message_figure("No units to place.")
    data = _unit_traces(units, {int(u) for u in selected})
    text = heading or f"{len(units)} units by their responses to the words · colour: unit cluster"
    return new_figure(data, _layout(text, dragmode, 420, True))


def _segments(pa: pd.DataFrame, pb: pd.DataFrame) -> tuple[list, list]:
    """x, y of line segments from each row of pa to the same row of pb (None between segments)."""
    xs: list = []
    ys: list = []
    for (xa, ya), (xb, yb) in zip(pa[["x", "y"]].to_numpy(), pb[["x", "y"]].to_numpy()):
        xs += [float(xa), float(xb), None]
        ys += [float(ya), float(yb), None]
    return xs, ys


def paired_unit_figure(a: pd.DataFrame, b: pd.DataFrame, pairs: pd.DataFrame, names: tuple[str, str],
                       selected: Sequence[int] = (), dragmode: str = "lasso") -> Figure:
    """Units of model A (left) and model B (right), each on its own map, matched units joined.

    a, b: unit, cluster, x, y; pairs: unit_a, unit_b, correlation (Hungarian matching). Segments are drawn
    darker the stronger |r|; with ``selected`` (units of A) only their pairs are drawn.
    """
    if a.empty or b.empty:
        return message_figure("No units to place.")
    sa, sb = _square(a), _square(b, 1.0 + GAP)
    sel = {int(u) for u in selected}
    # with a selection, its pairs; without, the strongest LINKS (all of them were a hairball)
    p = pairs[pairs["unit_a"].isin(sel)] if sel else pairs.loc[pairs["correlation"].abs().nlargest(LINKS).index]
    pa = sa.set_index("unit").loc[p["unit_a"].to_numpy()]
    pb = sb.set_index("unit").loc[p["unit_b"].to_numpy()]
    r = p["correlation"].abs().to_numpy()
    data = []
    buckets = ((0.0, 1.01, SELECTED, 1.4, "matched to the selection"),) if sel else (
        (0.0, 0.4, "#cfd8dc", 0.6, "|r| < 0.4"), (0.4, 0.7, "#90a4ae", 1.0, "0.4 ≤ |r| < 0.7"),
        (0.7, 1.01, "#37474f", 1.6, "|r| ≥ 0.7"))
    for lo, hi, color, width, label in buckets:
        m = (r >= lo) & (r < hi)
        if m.any():
            xs, ys = _segments(pa[m], pb[m])
            data.append(dict(type="scatter", mode="lines", x=xs, y=ys, name=label, hoverinfo="skip",
                             line=dict(color=color, width=width)))
    partner_a = {int(u): (int(v), float(c)) for u, v, c in zip(pairs["unit_a"], pairs["unit_b"], pairs["correlation"])}
    partner_b = {int(v): (int(u), float(c)) for u, v, c in zip(pairs["unit_a"], pairs["unit_b"], pairs["correlation"])}
    sel_b = {partner_a[u][0] for u in sel if u in partner_a}
    data += (_unit_traces(sa, sel, "a", True, partner_a, PAIRED_PX)
             + _unit_traces(sb, sel_b, "b", False, partner_b, PAIRED_PX))
    joined = ("the selection's matches joined" if sel else "matched units joined" if len(p) == len(pairs)
              else f"the strongest {len(p)} of {len(pairs)} matched pairs joined (select units for theirs)")
    layout = _layout(f"units: {esc(names[0])} (left) ↔ {esc(names[1])} (right), {joined}", dragmode, 460, True)
    layout["annotations"] = [dict(text=esc(n), x=x, y=-0.04, xref="x", yref="y", showarrow=False, yanchor="top",
                                  font=dict(size=12, color="#546e7a")) for n, x in ((names[0], 0.5),
                                                                                     (names[1], 1.5 + GAP))]
    return new_figure(data, layout)


def paired_word_figure(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], color_by: str = "pos",
                       selected: Sequence[str] = (), dragmode: str = "lasso") -> Figure:
    """Words of model A (left) and model B (right), each on its own map; each selected word is joined to itself."""
    if a.empty or b.empty:
        return message_figure("No co-clustered words to place.")
    sa, sb = _square(a), _square(b, 1.0 + GAP)
    sel = {str(w) for w in selected}
    data = []
    shared = [w for w in sa["word"].astype(str) if w in sel and w in set(sb["word"].astype(str))]
    if shared:
        xs, ys = _segments(sa.set_index("word").loc[shared], sb.set_index("word").loc[shared])
        data.append(dict(type="scatter", mode="lines", x=xs, y=ys, name="same word", hoverinfo="skip",
                         line=dict(color=SELECTED, width=1)))
    data += _word_traces(sa, color_by, sel, "a", True, PAIRED_PX) + _word_traces(sb, color_by, sel, "b", False,
                                                                                  PAIRED_PX)
    layout = _layout(f"words: {esc(names[0])} (left) ↔ {esc(names[1])} (right)", dragmode, 560, True)
    return new_figure(data, layout)
