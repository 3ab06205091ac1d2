"""Sentence glyphs: per token and unit cluster, aggregate, updated and preserved information."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .base import CLASS_COLORS, Figure, _figure, esc, message_figure, top_margin


def _fmt(v: float, spec: str = "+.3g") -> str:
    return "—" if v is None or not np.isfinite(v) else format(v, spec)


def glyph_figure(sentences: Sequence[dict]) -> Figure:
    """One glyph per token per unit cluster, one panel per sentence (plus contributions for classifiers).

    Each item of ``sentences`` has: title, tokens [T], original [T], measures (glyph_measures frame:
    position, cluster, size, alpha_pos, alpha_neg, d_alpha_pos, d_alpha_neg, preserved), k, and optionally
    contributions [T, C] with label_names. Glyph at (token t, cluster j): grey fill = preserved ratio;
    wide pale bars = aggregate α+/α− (÷|H_j|); narrow dark bars = updated Δα+/Δα− (÷|H_j|), all on one
    scale shared by the sentences shown.
    """
    if not sentences:
        return message_figure("Add a sentence in the control panel to see its glyphs.", 160)
    panels: list[tuple[int, str, float]] = []   # (sentence, kind, height in rows)
    for si, s in enumerate(sentences):
        k = int(s["measures"]["cluster"].max()) + 1 if len(s["measures"]) else 1
        panels.append((si, "glyph", max(2.5, k * 0.9)))
        if s.get("contributions") is not None:
            panels.append((si, "contrib", 2.4))
    gap = 1.6                                       # rows between panels (title, tick labels)
    total = sum(h for *_, h in panels) + gap * len(panels)
    allm = pd.concat([s["measures"] for s in sentences])
    scale = float(np.nanmax(np.abs(allm[["alpha_pos", "alpha_neg", "d_alpha_pos", "d_alpha_neg"]].to_numpy())))
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    half = 0.42
    data: list[dict] = []
    layout: dict = {"annotations": []}
    top = 1.0
    legend_done: set[str] = set()
    for n, (si, kind, h) in enumerate(panels, start=1):
        s = sentences[si]
        T = len(s["tokens"])
        xa, ya = ("x", "y") if n == 1 else (f"x{n}", f"y{n}")
        dom_top = top - (gap * 0.75) / total
        dom_bot = dom_top - h / total
        top = dom_bot - (gap * 0.25) / total
        ticks = [f"{esc(tok)}<br><i>{esc(orig)}</i>" if tok == "<unk>" and orig != tok else esc(tok)
                 for tok, orig in zip(s["tokens"], s["original"])]
        title = (esc(s.get("title") or s.get("text", "")) if kind == "glyph" else
                 "contribution of each word u<sub>i</sub><sup>T</sup>Δh<sub>t</sub> to each class")
        layout["annotations"].append(dict(text=title, x=0, xref="paper", y=dom_top, yref="paper", yanchor="bottom",
                                          xanchor="left", showarrow=False, font=dict(size=13, color="#263238")))
        if kind == "glyph":
            m = s["measures"]
            t = m["position"].to_numpy().astype(float)
            c = -m["cluster"].to_numpy().astype(float)
            toks = s["tokens"]
            hover = [f"{esc(toks[int(p)])} · H{int(j)} ({int(sz)} units)<br>α+ {_fmt(ap)}  α− {_fmt(an)}<br>"
                     f"Δα+ {_fmt(dp)}  Δα− {_fmt(dn)}<br>preserved {_fmt(pr, '.2f')}"
                     for p, j, sz, ap, an, dp, dn, pr in m[["position", "cluster", "size", "alpha_pos", "alpha_neg",
                                                           "d_alpha_pos", "d_alpha_neg", "preserved"]].itertuples(index=False)]
            pres = np.nan_to_num(m["preserved"].to_numpy(), nan=0.0)
            for key, x, y, base, width, color, name in (
                    ("p", t, 2 * half * pres, c - half, 0.9, "#cfd8dc", "preserved β ratio"),
                    ("a+", t - 0.17, m["alpha_pos"].to_numpy() / scale * half, c, 0.24, "#f4a582", "aggregate α+"),
                    ("a-", t - 0.17, m["alpha_neg"].to_numpy() / scale * half, c, 0.24, "#92c5de", "aggregate α−"),
                    ("d+", t + 0.1, m["d_alpha_pos"].to_numpy() / scale * half, c, 0.12, "#b2182b", "updated Δα+"),
                    ("d-", t + 0.25, m["d_alpha_neg"].to_numpy() / scale * half, c, 0.12, "#2166ac", "updated Δα−")):
                data.append(dict(type="bar", x=x.tolist(), y=np.nan_to_num(y).tolist(), base=base.tolist(),
                                 width=width, marker=dict(color=color), name=name, legendgroup=key,
                                 showlegend=key not in legend_done, hovertext=hover, hoverinfo="text",
                                 xaxis=xa, yaxis=ya))
                legend_done.add(key)
            k = int(m["cluster"].max()) + 1 if len(m) else 1
            yaxis = dict(tickvals=[-j for j in range(k)], ticktext=[f"H{j}" for j in range(k)],
                         range=[-k + 0.45, 0.55], showgrid=False, zeroline=False)
        else:
            contrib = np.asarray(s["contributions"], dtype=float)
            labels = s.get("label_names") or [str(i) for i in range(contrib.shape[1])]
            palette = ["#7b1fa2", "#ff7f0e", "#1f77b4", "#8c564b", "#17becf"]
            C = contrib.shape[1]
            for ci in range(C):
                key = f"c{ci}"
                data.append(dict(type="bar", x=(np.arange(T) + (ci - (C - 1) / 2) * 0.8 / C).tolist(),
                                 y=contrib[:, ci].tolist(), width=0.8 / C, name=f"→ {esc(labels[ci])}",
                                 marker=dict(color=CLASS_COLORS.get(str(labels[ci]).lower(), palette[ci % len(palette)])),
                                 legendgroup=key,
                                 showlegend=key not in legend_done, xaxis=xa, yaxis=ya, hoverinfo="text",
                                 hovertext=[f"{esc(tok)}: {v:+.3f} towards {esc(labels[ci])}"
                                            for tok, v in zip(s["tokens"], contrib[:, ci])]))
                legend_done.add(key)
            yaxis = dict(zeroline=True, zerolinecolor="#90a4ae", showgrid=True, gridcolor="#eceff1")
        layout["xaxis" if n == 1 else f"xaxis{n}"] = dict(
            tickvals=list(range(T)), ticktext=ticks, range=[-0.6, T - 0.4], showgrid=False, tickangle=0,
            domain=[0, 1], anchor=ya, zeroline=False)
        layout["yaxis" if n == 1 else f"yaxis{n}"] = dict(domain=[max(0.0, dom_bot), max(0.0, dom_top)],
                                                          anchor=xa, **yaxis)
    layout.update(barmode="overlay", bargap=0, height=int(total * 34 + 80), hovermode="closest",
                  legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0, font=dict(size=11)),
                  margin=dict(l=50, r=20, t=top_margin(), b=30))
    return _figure(data, layout)
