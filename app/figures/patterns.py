"""Pattern search figures: a passage's unit heat map with the selected span, and the matches as heat-map rows."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import SCALE, Figure, esc, message_figure, new_figure, title, top_margin

ROW_PX = 18


def _color_range(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(max(0.25, min(1.5, finite.max()))) if finite.size else 1.0


def passage_figure(tokens: Sequence[str], values: np.ndarray, units: Sequence[int], span: tuple[int, int] | None,
                   threshold: float, heading: str) -> Figure:
    """Heat map of ``values`` [T, len(units)] (one row per unit, one column per token) with the span outlined.

    Cells at or above the threshold carry a dot, so 'on' reads without the colour scale.
    """
    if not len(tokens) or not len(units):
        return message_figure("Select a span of tokens, or type units, to see their values here.", height=160)
    T = len(tokens)
    z = values.T                                                      # [U, T]
    rng = _color_range(z)
    labels = [f"u{u}" for u in units]
    words = [esc(t) for t in tokens]
    hover = np.array([[f"{words[t]} (token {t})<br>u{u}: {z[i, t]:+.3f}" for t in range(T)]
                      for i, u in enumerate(units)])
    data = [{"type": "heatmap", "z": z.tolist(), "x": list(range(T)), "y": labels, "zmin": -rng, "zmax": rng,
             "colorscale": SCALE, "zmid": 0, "text": hover.tolist(), "hoverinfo": "text", "xgap": 1, "ygap": 1,
             "colorbar": _colorbar("value", rng), "name": "values"}]
    on_i, on_t = np.nonzero(z >= threshold)
    if on_i.size:
        data.append({"type": "scatter", "mode": "markers", "x": on_t.tolist(), "y": [labels[i] for i in on_i],
                     "marker": {"size": 4, "color": "#212121"}, "hoverinfo": "skip", "name": f"≥ {threshold:g}",
                     "showlegend": False})
    shapes = []
    if span is not None:
        a, b = span
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": a - 0.5, "x1": b - 0.5, "y0": -0.02,
                       "y1": 1.02, "line": {"color": "#ff9800", "width": 3}, "fillcolor": "rgba(0,0,0,0)"})
    height = top_margin() + 70 + ROW_PX * len(units)
    return new_figure(data, dict(
        title=title(heading), height=max(220, height), width=None, shapes=shapes, showlegend=False,
        margin=dict(l=60, r=20, t=top_margin(), b=70),
        xaxis={"tickmode": "array", "tickvals": list(range(T)), "ticktext": words, "tickangle": -60,
               "showgrid": False, "zeroline": False, "range": [-0.5, T - 0.5]},
        yaxis={"autorange": "reversed", "showgrid": False, "type": "category"},
    ))


def _colorbar(label: str, rng: float) -> dict:
    """A colour bar with three ticks, −rng, 0 and +rng: plotly's own ticks (every 0.1 or 0.5) overlapped on
    these short plots."""
    return {"title": {"text": label}, "thickness": 12, "len": 0.9, "tickmode": "array",
            "tickvals": [-rng, 0, rng], "ticktext": [f"{-rng:.2g}".replace("-", "−"), "0", f"{rng:.2g}"],
            "tickfont": {"size": 11}}


def matches_figure(words: np.ndarray, values: np.ndarray, starts: np.ndarray, stops: np.ndarray, scores: np.ndarray,
                   n_units: int, before: int, heading: str) -> Figure:
    """One row per match: the tokens around it (``words`` [M, W], '' past the text) coloured by the pattern's
    mean value ``values`` [M, W]; the span (columns ``before`` .. before + length) outlined."""
    M, W = words.shape
    if M == 0:
        return message_figure("No matches: lower the threshold, allow fewer units, or untick 'off before'.",
                              height=160)
    rng = _color_range(values)
    labels = [f"#{i + 1} · {int(s)}/{n_units} · @{int(a)}" for i, (s, a) in enumerate(zip(scores, starts))]
    text = [[esc(w) for w in row] for row in words]
    hover = [[f"{text[i][j]} (position {int(starts[i]) - before + j})<br>mean value {values[i, j]:+.3f}"
              if words[i, j] != "" else "" for j in range(W)] for i in range(M)]
    data = [{"type": "heatmap", "z": np.where(np.isfinite(values), values, None).tolist(), "x": list(range(W)),
             "y": labels, "zmin": -rng, "zmax": rng, "zmid": 0, "colorscale": SCALE, "text": text,
             "texttemplate": "%{text}", "textfont": {"size": 11}, "hovertext": hover, "hoverinfo": "text",
             "xgap": 2, "ygap": 2, "colorbar": _colorbar("mean", rng),
             "name": "matches"}]
    shapes = [{"type": "rect", "xref": "x", "yref": "y", "x0": before - 0.5, "x1": before + int(b - a) - 0.5,
               "y0": i - 0.5, "y1": i + 0.5, "line": {"color": "#ff9800", "width": 2}}
              for i, (a, b) in enumerate(zip(starts, stops))]
    offsets = [str(j - before) for j in range(W)]
    return new_figure(data, dict(
        # at least 4 rows high: one or two rows left the plot under 50 px, and plotly's automargin for the x axis
        # title then had no room ("Something went wrong with axis scaling"), leaving the figure unredrawable
        title=title(heading), height=top_margin() + 50 + 24 * max(M, 4), shapes=shapes,
        margin=dict(l=150, r=20, t=top_margin(), b=40),
        xaxis={"tickmode": "array", "tickvals": list(range(W)), "ticktext": offsets, "showgrid": False,
               "zeroline": False, "title": {"text": "offset from the span start"}},
        yaxis={"autorange": "reversed", "showgrid": False, "type": "category", "tickfont": {"size": 10}},
    ))
