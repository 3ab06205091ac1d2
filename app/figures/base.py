"""What every figure builder shares: the look, escaping, colours and the empty-figure message.

Builders return plain figure specs (dicts) rather than ``go.Figure`` objects: constructing one validates
every property and costs 100-400 ms on a large view; dcc.Graph takes the dict as is.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go

#: Universal POS tag -> colour (fixed, colour-blind friendly where possible).
POS_COLORS: dict[str, str] = {
    "NOUN": "#1f77b4", "VERB": "#d62728", "ADJ": "#2ca02c", "ADV": "#9467bd", "PRON": "#ff7f0e",
    "DET": "#8c564b", "ADP": "#e377c2", "NUM": "#17becf", "CONJ": "#bcbd22", "PRT": "#7f7f7f",
    ".": "#393b79", "X": "#aaaaaa", "": "#444444",
}
POS_NAMES = {"": "no tag", ".": "punctuation"}
POSITIVE, NEGATIVE = "#c0392b", "#2471a3"     # link colours: sign of e(W_i, H_j) (RdBu reversed)
CLASS_COLORS = {"positive": "#2e7d32", "pos": "#2e7d32", "negative": "#c62828", "neg": "#c62828"}
SCALE = "RdBu_r"
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=12, color="#263238")
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def esc(text: object) -> str:
    """Text safe to show in a plotly label (entities, not tags)."""
    return html.escape(str(text), quote=False)


Figure = dict  # a plotly figure spec: {"data": [trace dicts], "layout": {...}}


def new_figure(data: list[dict], layout: dict) -> Figure:
    """A figure spec with the common look. Builders return plain dicts (what ``go.Figure(spec)`` takes):
    constructing ``go.Figure`` objects validates every property and costs 100-400 ms on a large view,
    more than the dashboard's whole latency budget; dcc.Graph takes the dict as is."""
    base = dict(template="plotly_white", font=FONT, margin=dict(l=40, r=20, t=40, b=40),
                hoverlabel=dict(font=dict(size=12)), plot_bgcolor="#ffffff", paper_bgcolor="#ffffff")
    return {"data": data, "layout": {**base, **layout}}


#: Pixels at the top of every figure kept for plotly's toolbar (the modebar floats over the top right corner):
#: titles and legends sit below this band, left-aligned, so the toolbar never covers them.
TOOLBAR_BAND = 34


def title(text: str, size: int = 14, lines: int = 1) -> dict:
    """A figure title left-aligned just above the plot area, below the toolbar band (see :func:`top_margin`)."""
    return dict(text=text, font=dict(size=size), x=0, xref="paper", xanchor="left", y=1, yref="paper",
                yanchor="bottom", pad=dict(b=6))


def top_margin(rows: float = 1.0, row_px: int = 22) -> int:
    """The top margin for ``rows`` text rows (title lines, a legend) above the plot, plus the toolbar band."""
    return int(TOOLBAR_BAND + rows * row_px + 6)


def axis_style(**kw) -> dict:
    return {"showgrid": True, "gridcolor": "#eceff1", "zeroline": False, "linecolor": "#b0bec5", **kw}


def message_figure(text: str, height: int = 220) -> Figure:
    """An empty figure that says why it is empty."""
    return new_figure([], dict(
        height=height, xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=esc(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font=dict(size=14, color="#607d8b"))]))


def to_go(fig: Figure):
    """The spec as a ``plotly.graph_objects.Figure`` (validated; for notebooks and tests)."""
    return go.Figure(fig)


def scatter_trace(**kw) -> dict:
    return {"type": "scatter", **kw}
