"""A unit page's figures: the distribution of its response, and its mean response per gold POS tag."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import NEGATIVE, POSITIVE, Figure, axis_style, esc, message_figure, new_figure, title, top_margin

__all__ = ["histogram_figure", "tags_figure"]


def histogram_figure(edges: np.ndarray, counts: np.ndarray, mean: float, std: float, unit: int) -> Figure:
    """Bars of ``counts`` between ``edges``, with the exact mean and ± one std marked."""
    if not counts.sum():
        return message_figure(f"No responses stored for unit {unit}.")
    centers = (edges[:-1] + edges[1:]) / 2
    bars = dict(type="bar", x=centers.tolist(), y=counts.tolist(), width=float(edges[1] - edges[0]),
                marker=dict(color="#90a4ae"), hovertemplate="%{x:.3g}: ~%{y:.0f} tokens<extra></extra>",
                name="tokens")
    shapes = [dict(type="line", x0=mean, x1=mean, y0=0, y1=1, yref="paper", line=dict(color="#263238", width=2))]
    if np.isfinite(std):
        shapes.append(dict(type="rect", x0=mean - std, x1=mean + std, y0=0, y1=1, yref="paper", line=dict(width=0),
                           fillcolor="rgba(38,50,56,0.08)"))
    return new_figure([bars], dict(
        height=260, title=title(f"unit {unit}: response over the split (mean {mean:.3g}, std {std:.3g})"),
        shapes=shapes, bargap=0, showlegend=False,
        xaxis=axis_style(title=dict(text="response")), yaxis=axis_style(title=dict(text="tokens (approx.)")),
        margin=dict(l=60, r=20, t=top_margin(1), b=40)))


def tags_figure(tags: pd.DataFrame, unit: int) -> Figure:
    """Mean response per tag with its 95% interval (± 1.96·std/√n), tags sorted by selectivity z."""
    if tags.empty:
        return message_figure("No gold POS tags for this corpus.")
    df = tags.sort_values("z", ascending=True, na_position="first")
    half = 1.96 * df["std"].to_numpy(float) / np.sqrt(df["n"].to_numpy(float).clip(min=1))
    labels = [esc(t) for t in df["tag"]]
    colors = [POSITIVE if z > 0 else NEGATIVE for z in df["z"].fillna(0)]
    bar = dict(type="bar", orientation="h", x=df["mean"].tolist(), y=labels, marker=dict(color=colors),
               error_x=dict(type="data", array=half.tolist(), visible=True, color="#455a64"),
               customdata=np.stack([df["n"].to_numpy(float), df["z"].to_numpy(float)], axis=1).tolist(),
               text=[f"z {z:.1f}" if np.isfinite(z) else "" for z in df["z"]], textposition="outside",
               hovertemplate="%{y}: mean %{x:.3g} (n %{customdata[0]:,.0f}, z %{customdata[1]:.1f})<extra></extra>")
    return new_figure([bar], dict(
        height=max(240, 22 * len(df) + 80), title=title(f"unit {unit}: mean response per gold POS tag, 95% interval"),
        showlegend=False, xaxis=axis_style(title=dict(text="mean response"), zeroline=True, zerolinecolor="#90a4ae"),
        yaxis=axis_style(type="category", categoryorder="array", categoryarray=labels, showgrid=False),
        margin=dict(l=90, r=40, t=top_margin(1), b=40)))
