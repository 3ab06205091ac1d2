"""Where one model beats another: loss difference by POS tag, per-word losses, a classifier's confusions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.loss_compare import LossComparison

from .base import NEGATIVE, POSITIVE, Figure, axis_style, esc, message_figure, new_figure, title, top_margin
from .charts import COUNT_SCALE

__all__ = ["tag_delta_figure", "word_loss_scatter", "confusion_figure", "ablation_figure"]


def tag_delta_figure(comp: LossComparison, name_a: str, name_b: str) -> Figure:
    """Mean loss of A minus B per POS tag with its bootstrap 95% interval; bars left of 0: A is better."""
    t = comp.by_tag.sort_values("delta", ascending=False)
    if t.empty:
        return message_figure("No tokens to compare.")
    share = t["contribution"] / comp.delta if comp.delta else np.zeros(len(t))
    hover = [f"{esc(g)}: n {n:,}<br>mean loss {esc(name_a)} {la:.3f}, {esc(name_b)} {lb:.3f} nats"
             f"<br>Δ {d:+.3f} [{lo:+.3f}, {hi:+.3f}]<br>contributes {c:+.4f} nats ({s:.0%} of the total Δ)"
             for g, n, la, lb, d, lo, hi, c, s in zip(t["tag"], t["n"], t["loss_a"], t["loss_b"], t["delta"],
                                                     t["lo"], t["hi"], t["contribution"], share, strict=True)]
    labels = [f"{esc(g)} <span style='color:#78909c'>n {n:,}</span>" for g, n in zip(t["tag"], t["n"], strict=True)]
    bar = dict(type="bar", orientation="h", y=labels, x=t["delta"].tolist(), customdata=list(t["tag"]),
               marker=dict(color=[NEGATIVE if d < 0 else POSITIVE for d in t["delta"]]),
               error_x=dict(type="data", symmetric=False, array=(t["hi"] - t["delta"]).tolist(),
                            arrayminus=(t["delta"] - t["lo"]).tolist(), color="#455a64", thickness=1.2),
               hovertext=hover, hoverinfo="text", name="Δ mean loss")
    text = (f"mean loss {esc(name_a)} − {esc(name_b)} by POS tag: total {comp.delta:+.4f} nats "
            f"over {comp.tokens:,} tokens<br><sup>left of 0: {esc(name_a)} is better · whiskers: 95% bootstrap "
            "interval over sentences · hover: each tag's contribution to the total</sup>")
    return new_figure([bar], dict(
        height=max(320, 26 * len(t) + 140), title=title(text, size=13, lines=2),
        margin=dict(l=10, r=20, t=top_margin(2.8), b=45), showlegend=False,
        xaxis=axis_style(title=dict(text=f"Δ mean loss, nats ({esc(name_a)} − {esc(name_b)})"), zeroline=True,
                         zerolinecolor="#607d8b"),
        yaxis=axis_style(automargin=True)))


def word_loss_scatter(comp: LossComparison, name_a: str, name_b: str, top: int = 400) -> Figure:
    """Per-word mean loss of A against B (the ``top`` most frequent words), sized by frequency."""
    w = comp.by_word.nlargest(top, "n")
    if w.empty:
        return message_figure("No words to compare.")
    size = (6 + 24 * np.sqrt(w["n"] / w["n"].max())).tolist()
    hi = float(max(w["loss_a"].max(), w["loss_b"].max())) * 1.05
    points = dict(type="scatter", mode="markers", x=w["loss_b"].tolist(), y=w["loss_a"].tolist(),
                  marker=dict(size=size, color=[NEGATIVE if d < 0 else POSITIVE for d in w["delta"]], opacity=0.6,
                              line=dict(width=0.5, color="#ffffff")),
                  hovertext=[f"{esc(x)} ({esc(g)}): n {n:,}<br>{esc(name_a)} {la:.3f}, {esc(name_b)} {lb:.3f} nats"
                             for x, g, n, la, lb in zip(w["word"], w["tag"], w["n"], w["loss_a"], w["loss_b"],
                                                        strict=True)],
                  hoverinfo="text", name="words")
    diagonal = dict(type="scatter", mode="lines", x=[0, hi], y=[0, hi], line=dict(color="#90a4ae", dash="dot"),
                    hoverinfo="skip", name="equal loss")
    text = (f"mean loss per word, {esc(name_a)} against {esc(name_b)} ({len(w)} most frequent words)"
            f"<br><sup>below the diagonal: {esc(name_a)} is better · size: frequency</sup>")
    return new_figure([diagonal, points], dict(
        height=400, title=title(text, size=13, lines=2), showlegend=False,
        margin=dict(l=55, r=15, t=top_margin(2.8), b=45),
        xaxis=axis_style(title=dict(text=f"{esc(name_b)}, nats"), range=[0, hi]),
        yaxis=axis_style(title=dict(text=f"{esc(name_a)}, nats"), range=[0, hi])))


def confusion_figure(confusion: pd.DataFrame, name: str) -> Figure:
    """A classifier's confusion matrix: documents per (true label, predicted label)."""
    if confusion.empty:
        return message_figure(f"No class outcomes for {name}.")
    table = confusion.pivot(index="label", columns="predicted", values="n").fillna(0).astype(int)
    return new_figure([dict(
        type="heatmap", z=table.to_numpy().tolist(), x=[esc(c) for c in table.columns],
        y=[esc(r) for r in table.index], colorscale=COUNT_SCALE, zmin=0, showscale=False, texttemplate="%{z}",
        hovertemplate="true %{y}, predicted %{x}: %{z} documents<extra></extra>")], dict(
        height=260, title=title(f"{esc(name)}: confusion matrix", size=13),
        margin=dict(l=80, r=10, t=top_margin(1.6), b=40),
        xaxis=dict(title=dict(text="predicted"), side="bottom"),
        yaxis=dict(title=dict(text="true label"), autorange="reversed")))


def ablation_figure(rows: pd.DataFrame, title_text: str) -> Figure:
    """Each target's effect of zeroing a unit cluster (a bar), over the random unit sets' mean ± 2 sd (grey)."""
    if rows.empty:
        return message_figure("No ablation stored for this chip.")
    r = rows.iloc[::-1]
    names = [("all tokens" if k == "all" else f"W{t}" if k == "word_cluster" else str(t))
             for k, t in zip(r["target_kind"], r["target"], strict=True)]
    labels = [f"{esc(x)} <span style='color:#78909c'>n {n:,}</span>" for x, n in zip(names, r["tokens"], strict=True)]
    band = dict(type="bar", orientation="h", y=labels, x=(4 * r["baseline_std"]).tolist(),
                base=(r["baseline_mean"] - 2 * r["baseline_std"]).tolist(), marker=dict(color="rgba(144,164,174,0.45)"),
                hoverinfo="skip", name="random sets (mean ± 2 sd)", width=0.8)
    hover = [f"{esc(x)}: Δ {d:+.4f} (unablated {b:.3f})<br>random sets {m:+.4f} ± {s:.4f}<br>z {z:+.2f}, p {p:.3f}"
             for x, d, b, m, s, z, p in zip(names, r["delta_mean"], r["base_mean"], r["baseline_mean"],
                                            r["baseline_std"], r["z"], r["p"], strict=True)]
    effect = dict(type="bar", orientation="h", y=labels, x=r["delta_mean"].tolist(), width=0.4,
                  marker=dict(color=[POSITIVE if p <= 0.05 else "#546e7a" for p in r["p"]]),
                  hovertext=hover, hoverinfo="text", name="this chip")
    measure = str(rows["measure"].iloc[0])
    return new_figure([band, effect], dict(
        barmode="overlay", height=max(260, 24 * len(r) + 130), title=title(title_text, size=13, lines=2),
        margin=dict(l=10, r=20, t=top_margin(2.8), b=45), showlegend=True,
        legend=dict(orientation="h", y=-0.18, yanchor="top", x=0, font=dict(size=10)),
        xaxis=axis_style(title=dict(text=f"Δ mean {measure} when the chip's units are zeroed"), zeroline=True,
                         zerolinecolor="#607d8b"),
        yaxis=axis_style(automargin=True)))

