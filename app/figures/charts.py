"""Models, Jobs and Compare charts: training curves (of stored models; of one job), gradient flow, matched |r|
against chance, cluster overlap."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .base import PALETTE, Figure, axis_style, esc, message_figure, new_figure, scatter_trace, title, top_margin


def training_curves(metrics: pd.DataFrame) -> Figure:
    """Loss, perplexity and accuracy per epoch: one colour per model, train dotted, valid solid."""
    if metrics.empty:
        return message_figure("No training metrics in the store yet.")
    data = []
    for mi, (model_id, g) in enumerate(metrics.groupby("model_id", sort=True)):
        color = PALETTE[mi % len(PALETTE)]
        for split, dash in (("train", "dot"), ("valid", "solid")):
            s = g[g["split"] == split].sort_values("epoch")
            for col, metric in enumerate(("loss", "perplexity", "accuracy"), start=1):
                y = pd.to_numeric(s[metric], errors="coerce")
                if s.empty or y.notna().sum() == 0:
                    continue
                data.append(scatter_trace(
                    x=s["epoch"].tolist(), y=[None if pd.isna(v) else float(v) for v in y], mode="lines+markers",
                    line=dict(color=color, dash=dash), name=f"{esc(model_id)} {split}", legendgroup=esc(model_id),
                    showlegend=col == 1, xaxis="x" if col == 1 else f"x{col}", yaxis="y" if col == 1 else f"y{col}",
                    hovertemplate=f"{esc(model_id)} {split}<br>epoch %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>"))
    layout: dict = dict(height=356, legend=dict(orientation="h", y=-0.3, x=0), annotations=[],
                        margin=dict(l=40, r=20, t=top_margin(), b=40))
    titles = ("loss", "perplexity (language models)", "accuracy (classifiers)")
    for col in (1, 2, 3):
        lo, hi = (col - 1) / 3 + 0.03, col / 3 - 0.03
        layout["xaxis" if col == 1 else f"xaxis{col}"] = axis_style(domain=[lo, hi], title=dict(text="epoch"), dtick=1,
                                                               anchor="y" if col == 1 else f"y{col}")
        layout["yaxis" if col == 1 else f"yaxis{col}"] = axis_style(anchor="x" if col == 1 else f"x{col}")
        layout["annotations"].append(dict(text=titles[col - 1], x=(lo + hi) / 2, xref="paper", y=1.02, yref="paper",
                                          yanchor="bottom", showarrow=False, font=dict(size=13)))
    return new_figure(data, layout)


def gradient_flow_figure(df: pd.DataFrame) -> Figure:
    """‖∂h_t/∂h_{t−k}‖ against k, one curve per model and layer.

    Log y axis with powers of ten (no SI prefixes: 1e-30 is not "1 q"), its range set from the data so that
    norms down to 1e-30 and below are drawn; norms that are 0 or not finite leave a gap (log scale).
    """
    if df.empty:
        return message_figure("No gradient flow stored for these models (analyse with --gradient-k > 0).")
    data = []
    for mi, (model_id, g) in enumerate(df.groupby("model_id", sort=False)):
        layers = sorted(g["layer"].unique())
        for layer in layers:
            s = g[g["layer"] == layer].sort_values("distance")
            y = s["grad_norm"].to_numpy(dtype=np.float64)
            data.append(scatter_trace(
                x=s["distance"].tolist(), y=[float(v) if np.isfinite(v) and v > 0 else None for v in y],
                mode="lines", name=f"{esc(model_id)} layer {layer}",
                line=dict(color=PALETTE[mi % 4], dash="solid" if layer == layers[-1] else "dot", width=2),
                hovertemplate=f"{esc(model_id)} layer {layer}<br>k = %{{x}}<br>norm %{{y:.3e}}<extra></extra>"))
    ys = df["grad_norm"].to_numpy(dtype=np.float64)
    gaps = int((~(np.isfinite(ys) & (ys > 0))).sum())
    ys = ys[np.isfinite(ys) & (ys > 0)]
    yaxis = axis_style(title=dict(text="mean norm"), type="log", exponentformat="power", showexponent="all")
    # a note under the title, left (the toolbar holds the top right corner)
    notes = [] if not gaps else [dict(
        text=f"{gaps} point(s) with norm 0 or not finite (underflow) are not drawn", x=0, y=1, xref="paper",
        yref="paper", xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=10, color="#b71c1c"))]
    head = title("Gradient flow ‖∂h<sub>t</sub>/∂h<sub>t−k</sub>‖")
    if gaps:
        head["pad"] = dict(b=22)
    if ys.size:
        lo, hi = math.floor(math.log10(ys.min())), math.ceil(math.log10(ys.max()))
        hi = max(hi, lo + 1)
        yaxis.update(range=[lo - 0.1, hi + 0.1], dtick=max(1, math.ceil((hi - lo) / 8)))
    return new_figure(data, dict(
        height=330 + (16 if gaps else 0), title=head, margin=dict(l=70, r=20, t=top_margin(1.8 if gaps else 1), b=40),
        xaxis=axis_style(title=dict(text="k (steps back)")), yaxis=yaxis, annotations=notes,
        legend=dict(orientation="h", y=-0.3, x=0)))


def matched_r_figure(pairs: pd.DataFrame, chance: dict | None, name_a: str = "A", name_b: str = "B") -> Figure:
    """|r| of every matched unit pair by rank, over the same matching on shuffled words (chance band).

    pairs: correlation (sorted by |r| descending, as :func:`analytics.matching.match_units` returns them);
    chance: :func:`analytics.matching.chance_summary` (by_rank_mean/lo/hi [M], max, shuffles) or None.
    """
    if pairs.empty:
        return message_figure("No matched units.")
    r = np.sort(np.abs(pairs["correlation"].to_numpy(dtype=float)))[::-1]
    rank = np.arange(1, len(r) + 1).tolist()
    data: list[dict] = []
    if chance is not None:
        lo = np.asarray(chance["by_rank_lo"], float)[:len(r)].tolist()
        hi = np.asarray(chance["by_rank_hi"], float)[:len(r)].tolist()
        mid = np.asarray(chance["by_rank_mean"], float)[:len(r)].tolist()
        n = int(chance["shuffles"])
        data.append(scatter_trace(x=rank, y=lo, mode="lines", line=dict(width=0, color="#90a4ae"), hoverinfo="skip",
                             showlegend=False, name="chance low"))
        data.append(scatter_trace(x=rank, y=hi, mode="lines", line=dict(width=0, color="#90a4ae"), fill="tonexty",
                             fillcolor="rgba(144,164,174,0.35)", hoverinfo="skip",
                             name=f"chance (min–max of {n} shuffles)"))
        data.append(scatter_trace(x=rank, y=mid, mode="lines", line=dict(color="#607d8b", dash="dash", width=1.5),
                             name="chance (mean)", hovertemplate="rank %{x}<br>shuffled |r| %{y:.3f}<extra></extra>"))
    data.append(scatter_trace(x=rank, y=r.tolist(), mode="lines+markers", marker=dict(size=4, color="#1565c0"),
                         line=dict(color="#1565c0", width=2), name="matched |r|",
                         hovertemplate="rank %{x}<br>|r| %{y:.3f}<extra></extra>"))
    text = "matched |r| by rank" if chance is None else f"chance: |r| up to {chance['level']:.2f}"
    return new_figure(data, dict(
        height=300, title=title(text, size=13), margin=dict(l=50, r=10, t=top_margin(), b=95),
        xaxis=axis_style(title=dict(text="matched pair, by |r|", font=dict(size=11)), rangemode="tozero"),
        yaxis=axis_style(title=dict(text=f"|r| {esc(name_a)} ↔ {esc(name_b)}", font=dict(size=11)), range=[0, 1.02]),
        legend=dict(orientation="h", y=-0.32, yanchor="top", x=0, font=dict(size=10)), hovermode="x unified"))


#: Counts: 0 white, the largest count dark blue (ColorBrewer Blues). plotly.js's named "Blues" runs the other way
#: (dark at its low end), which drew empty cells dark and the biggest overlaps pale.
COUNT_SCALE = [[0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1.0, "#08306b"]]


def contingency_figure(table: pd.DataFrame, name_a: str, name_b: str) -> Figure:
    """Matched unit counts per (cluster of A, cluster of B): the more units, the darker the cell."""
    if table.empty:
        return message_figure("No matched units.")
    return new_figure([dict(
        type="heatmap", z=table.to_numpy().tolist(), x=[f"H{c}" for c in table.columns],
        y=[f"H{r}" for r in table.index], colorscale=COUNT_SCALE, zmin=0, showscale=False, texttemplate="%{z}",
        hovertemplate=f"{esc(name_a)} %{{y}} × {esc(name_b)} %{{x}}: %{{z}} units<extra></extra>")], dict(
        height=310, margin=dict(l=70, r=10, t=top_margin(2.4), b=10),
        xaxis=dict(title=dict(text=esc(name_b)), side="top"),
        yaxis=dict(title=dict(text=esc(name_a)), autorange="reversed")))


def job_curve_figure(detail: dict, heading: str = "") -> Figure:
    """Training curve of one job from its detail, in the house style: train and validation loss per epoch and the
    latest batch's loss; for a classifier also the validation accuracy, on a right-hand axis."""
    curve = sorted(detail.get("curve") or [], key=lambda p: p.get("epoch", 0))
    epochs = [p.get("epoch") for p in curve]
    data = [scatter_trace(x=epochs, y=[p.get(key) for p in curve], mode="lines+markers", name=name,
                          line=dict(color=color, dash=dash),
                          hovertemplate=f"epoch %{{x}}<br>{name} %{{y:.4g}}<extra></extra>")
            for key, name, color, dash in (("train_loss", "train loss", PALETTE[0], "dot"),
                                           ("valid_loss", "validation loss", PALETTE[0], "solid"))]
    accuracy = [p.get("valid_accuracy") for p in curve]
    if any(isinstance(a, (int, float)) for a in accuracy):    # a classifier: accuracy is what a reader wants
        data.append(scatter_trace(x=epochs, y=accuracy, mode="lines+markers", name="validation accuracy", yaxis="y2",
                                  line=dict(color=PALETTE[2]),
                                  hovertemplate="epoch %{x}<br>validation accuracy %{y:.3f}<extra></extra>"))
    latest = detail.get("latest") or {}
    last = max(epochs or [1])
    if latest.get("stage") == "train" and latest.get("epoch") and latest.get("steps"):
        x = latest["epoch"] - 1 + latest.get("step", 0) / latest["steps"]
        if not epochs or x > epochs[-1]:
            data.append(scatter_trace(x=[x], y=[latest.get("loss")], mode="markers", name="current batch loss",
                                      marker=dict(symbol="x", color=PALETTE[1])))
            last = max(last, latest.get("epochs") or latest["epoch"])
    layout = dict(height=320, uirevision="jobs-curve", legend=dict(orientation="h", x=0, y=-0.25),
                  xaxis=axis_style(title=dict(text="epoch"), tickformat="d", tickmode="linear", tick0=1,
                                   dtick=max(1, round(last / 10))),
                  yaxis=axis_style(title=dict(text="loss (nats)")),
                  margin=dict(l=50, r=60, t=top_margin(1 if heading else 0), b=40))
    if len(data) > 2 and data[2].get("yaxis") == "y2":
        layout["yaxis2"] = axis_style(title=dict(text="validation accuracy"), overlaying="y", side="right",
                                      range=[0, 1], showgrid=False)
    if heading:
        layout["title"] = title(esc(heading))
    return new_figure(data, layout)
