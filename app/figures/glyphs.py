"""Sentence glyphs: per token and unit cluster, aggregate, updated and preserved information.

Two layouts share one glyph drawing (:func:`glyph_bars`): :func:`glyph_figure`, one row of glyphs per unit
cluster under each sentence (a long sentence wraps onto more rows of at most :data:`WRAP` tokens), and
:func:`beside_chips`, the paper's layout, where each cluster's row of glyphs sits level with its memory chip
in the co-cluster view.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .base import CLASS_COLORS, Figure, esc, message_figure, new_figure, top_margin

WRAP = 20          # tokens per row of glyphs: a longer sentence wraps (at ~1000 px a token keeps ~45 px)
HALF = 0.42        # half the height of a glyph, in rows
GLYPH_COLUMN = 2.2  # layout units of one token beside the chips (a chip cell is one unit) ...
MIN_COLUMN = 1.0    # ... narrowed down to this for long sentences, so that the glyphs fit in
BESIDE_UNITS = 32.0  # layout units for all the glyphs beside the chips; tokens beyond are left to the glyph card
TITLE_CHARS = 110   # a longer sentence's title is cut (the whole text shows on hover)
BLOCK_GAP = 1.0     # layout units between two sentences' blocks beside the chips

#: (key, x offset in token widths, width in token widths, colour, legend name) of the glyph's bars
_BARS = (("a+", -0.17, 0.24, "#f4a582", "aggregate α+"), ("a-", -0.17, 0.24, "#92c5de", "aggregate α−"),
         ("d+", 0.10, 0.12, "#b2182b", "updated Δα+"), ("d-", 0.25, 0.12, "#2166ac", "updated Δα−"))
_COLUMNS = {"a+": "alpha_pos", "a-": "alpha_neg", "d+": "d_alpha_pos", "d-": "d_alpha_neg"}


def _fmt(v: float, spec: str = "+.3g") -> str:
    return "—" if v is None or not np.isfinite(v) else format(v, spec)


def glyph_scale(sentences: Sequence[dict]) -> float:
    """The largest |α±|, |Δα±| over the sentences shown: one scale for all their glyphs."""
    allm = pd.concat([s["measures"] for s in sentences])
    scale = float(np.nanmax(np.abs(allm[list(_COLUMNS.values())].to_numpy()))) if len(allm) else 1.0
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def glyph_bars(m: pd.DataFrame, tokens: Sequence[str], x_of: Callable[[np.ndarray], np.ndarray],
               y_of: Callable[[np.ndarray], np.ndarray], height: Callable[[np.ndarray], np.ndarray], column: float,
               scale: float, up: float, legend_done: set[str], **trace) -> list[dict]:
    """The bar traces of the glyphs of measure rows ``m`` (position, cluster, size, alpha_pos, ...).

    x_of(position) is the centre of a token's glyph, ``column`` its width, y_of(cluster) the middle of a
    cluster's glyph and height(cluster) its full height, all in axis units; ``up`` is +1 where y grows upwards,
    -1 where it grows downwards (the co-cluster view). Bars: grey = preserved ratio from the bottom of the glyph,
    pale = α±/|H| and dark = Δα±/|H| from its middle, relative to ``scale``. customdata: ["glyph", position,
    cluster]; ``trace`` adds keys to every trace (axes, a legend group prefix, ...).
    """
    if m.empty:
        return []
    pos = m["position"].to_numpy()
    clu = m["cluster"].to_numpy()
    x, mid, full = x_of(pos), y_of(clu), height(clu)
    hover = [f"{esc(tokens[int(p)])} · H{int(j)} ({int(sz)} units)<br>α+ {_fmt(ap)}  α− {_fmt(an)}<br>"
             f"Δα+ {_fmt(dp)}  Δα− {_fmt(dn)}<br>preserved {_fmt(pr, '.2f')}"
             for p, j, sz, ap, an, dp, dn, pr in m[["position", "cluster", "size", "alpha_pos", "alpha_neg",
                                                   "d_alpha_pos", "d_alpha_neg", "preserved"]].itertuples(index=False)]
    cdata = [["glyph", int(p), int(j)] for p, j in zip(pos, clu)]
    pres = np.nan_to_num(m["preserved"].to_numpy(float), nan=0.0)
    specs = [("p", x, up * full * pres, mid - up * full / 2, 0.9 * column, "#cfd8dc", "preserved β ratio")]
    specs += [(key, x + dx * column, up * np.nan_to_num(m[_COLUMNS[key]].to_numpy(float)) / scale * full / 2, mid,
               w * column, color, name) for key, dx, w, color, name in _BARS]
    out = []
    for key, bx, by, base, width, color, name in specs:
        out.append(dict(type="bar", x=bx.tolist(), y=by.tolist(), base=base.tolist(), width=width,
                        marker=dict(color=color), name=name, legendgroup=key, showlegend=key not in legend_done,
                        hovertext=hover, hoverinfo="text", customdata=cdata, **trace))
        legend_done.add(key)
    return out


def _segments(T: int, wrap: int = WRAP) -> list[tuple[int, int]]:
    """[(first, last + 1)] token ranges of the rows of a sentence of T tokens."""
    return [(a, min(a + wrap, T)) for a in range(0, max(T, 1), wrap)]


def _panels(sentences: Sequence[dict]) -> list[tuple[int, str, float, tuple[int, int]]]:
    """(sentence, kind, height in rows, tokens a..b) of each panel: a glyph row per segment, and a contribution
    row under it for classifiers."""
    panels: list[tuple[int, str, float, tuple[int, int]]] = []
    for si, s in enumerate(sentences):
        for seg in _segments(len(s["tokens"])):
            panels.append((si, "glyph", max(2.5, _clusters(s) * 0.9), seg))
            if s.get("contributions") is not None:
                panels.append((si, "contrib", 2.4, seg))
    return panels


def _clusters(s: dict) -> int:
    return int(s["measures"]["cluster"].max()) + 1 if len(s["measures"]) else 1


def _panel_title(s: dict, kind: str, a: int, b: int) -> dict:
    """The annotation above a panel: the sentence (or where a wrapped one continues), or what the bars are."""
    T = len(s["tokens"])
    part = f" (words {a + 1}–{b} of {T})" if T > WRAP else ""
    full = str(s.get("title") or s.get("text", ""))
    if kind == "glyph":
        shown = full if len(full) <= TITLE_CHARS else full[:TITLE_CHARS - 1].rstrip() + "…"
        title = esc(shown) if a == 0 else f"… continued{part}"
        if a == 0 and part:
            title += f"<span style='color:#78909c'>{part}</span>"
    else:
        title = "contribution of each word u<sub>i</sub><sup>T</sup>Δh<sub>t</sub> to each class" + part
    return dict(text=title, x=0, xref="paper", yref="paper", yanchor="bottom", xanchor="left", showarrow=False,
                font=dict(size=13, color="#263238"), hovertext=esc(full))


def _glyph_panel(s: dict, a: int, b: int, scale: float, legend_done: set[str], xa: str, ya: str
                 ) -> tuple[list[dict], dict]:
    """(bar traces, y axis) of the glyphs of tokens a..b of a sentence."""
    m = s["measures"]
    m = m[(m["position"] >= a) & (m["position"] < b)]
    data = glyph_bars(m, s["tokens"], lambda p: p.astype(float), lambda c: -c.astype(float),
                      lambda c: np.full(len(c), 2 * HALF), 1.0, scale, 1.0, legend_done, xaxis=xa, yaxis=ya)
    k = _clusters(s)
    return data, dict(tickvals=[-j for j in range(k)], ticktext=[f"H{j}" for j in range(k)],
                      range=[-k + 0.45, 0.55], showgrid=False, zeroline=False)


def _contrib_panel(s: dict, a: int, b: int, legend_done: set[str], xa: str, ya: str) -> tuple[list[dict], dict]:
    """(bar traces, y axis) of each word's contribution to each class, tokens a..b, on one scale for the whole
    sentence (the largest |contribution| of any of its words), so that the rows of a wrapped sentence compare."""
    whole = np.asarray(s["contributions"], dtype=float)
    most = float(np.nanmax(np.abs(whole))) if whole.size and np.isfinite(whole).any() else 0.0
    most = most if most > 0 else 1.0
    contrib = whole[a:b]
    labels = s.get("label_names") or [str(i) for i in range(contrib.shape[1])]
    palette = ["#7b1fa2", "#ff7f0e", "#1f77b4", "#8c564b", "#17becf"]
    C = contrib.shape[1]
    data = []
    for ci in range(C):
        key = f"c{ci}"
        data.append(dict(type="bar", x=(np.arange(a, b) + (ci - (C - 1) / 2) * 0.8 / C).tolist(),
                         y=contrib[:, ci].tolist(), width=0.8 / C, name=f"→ {esc(labels[ci])}",
                         marker=dict(color=CLASS_COLORS.get(str(labels[ci]).lower(), palette[ci % len(palette)])),
                         legendgroup=key,
                         showlegend=key not in legend_done, xaxis=xa, yaxis=ya, hoverinfo="text",
                         hovertext=[f"{esc(tok)}: {v:+.3f} towards {esc(labels[ci])}"
                                    for tok, v in zip(s["tokens"][a:b], contrib[:, ci])]))
        legend_done.add(key)
    return data, dict(zeroline=True, zerolinecolor="#90a4ae", showgrid=True, gridcolor="#eceff1",
                      range=[-1.1 * most, 1.1 * most])


def glyph_figure(sentences: Sequence[dict]) -> Figure:
    """One glyph per token per unit cluster, rows of at most WRAP tokens per sentence (plus contributions for
    classifiers).

    Each item of ``sentences`` has: title, tokens [T], original [T], measures (glyph_measures frame:
    position, cluster, size, alpha_pos, alpha_neg, d_alpha_pos, d_alpha_neg, preserved), k, and optionally
    contributions [T, C] with label_names. Glyph at (token t, cluster j): grey fill = preserved ratio;
    wide pale bars = aggregate α+/α− (÷|H_j|); narrow dark bars = updated Δα+/Δα− (÷|H_j|), all on one
    scale shared by the sentences shown. A sentence longer than WRAP tokens continues on further rows, every
    row as wide as WRAP tokens so that glyphs keep one size.
    """
    if not sentences:
        return message_figure("Add a sentence in the control panel to see its glyphs.", 160)
    panels = _panels(sentences)
    gap = 1.6                                       # rows between panels (title, tick labels)
    total = sum(h for _, _, h, _ in panels) + gap * len(panels)
    scale = glyph_scale(sentences)
    data: list[dict] = []
    layout: dict = {"annotations": []}
    top = 1.0
    legend_done: set[str] = set()
    for n, (si, kind, h, (a, b)) in enumerate(panels, start=1):
        s = sentences[si]
        T = len(s["tokens"])
        xa, ya = ("x", "y") if n == 1 else (f"x{n}", f"y{n}")
        dom_top = top - (gap * 0.75) / total
        dom_bot = dom_top - h / total
        top = dom_bot - (gap * 0.25) / total
        ticks = [f"{esc(tok)}<br><i>{esc(orig)}</i>" if tok == "<unk>" and orig != tok else esc(tok)
                 for tok, orig in zip(s["tokens"][a:b], s["original"][a:b])]
        layout["annotations"].append(dict(_panel_title(s, kind, a, b), y=dom_top))
        bars, yaxis = _glyph_panel(s, a, b, scale, legend_done, xa, ya) if kind == "glyph" else \
            _contrib_panel(s, a, b, legend_done, xa, ya)
        data += bars
        width = WRAP if T > WRAP else T                  # rows of a wrapped sentence share one token width
        layout["xaxis" if n == 1 else f"xaxis{n}"] = dict(
            tickvals=list(range(a, b)), ticktext=ticks, range=[a - 0.6, a + width - 0.4], showgrid=False,
            tickangle=0, domain=[0, 1], anchor=ya, zeroline=False)
        layout["yaxis" if n == 1 else f"yaxis{n}"] = dict(domain=[max(0.0, dom_bot), max(0.0, dom_top)],
                                                          anchor=xa, **yaxis)
    layout.update(barmode="overlay", bargap=0, height=int(total * 34 + 80), hovermode="closest",
                  legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0, font=dict(size=11)),
                  margin=dict(l=50, r=20, t=top_margin(), b=30))
    return new_figure(data, layout)


def _blocks(sentences: Sequence[dict], col: float, right: float) -> list[tuple[int, int, float]]:
    """(sentence index, tokens shown, left x) of each sentence's block beside the chips, in the order added, left
    to right and ending at ``right``; the tokens beyond BESIDE_UNITS are left to the glyph card."""
    room = int(BESIDE_UNITS // col)                  # token columns that fit
    shown = []
    for si, s in enumerate(sentences):
        T = min(len(s["tokens"]), room)
        if T <= 0:
            break
        room -= T
        shown.append((si, T))
    x = right - sum(T * col for _, T in shown) - BLOCK_GAP * (len(shown) - 1)
    out = []
    for si, T in shown:
        out.append((si, T, x))
        x += T * col + BLOCK_GAP
    return out


def head_room(sentences: Sequence[dict]) -> float:
    """Layout units above the chips for the blocks' labels and their tokens written at 45°."""
    longest = max((len(t) for s in sentences for t in s["tokens"]), default=0)
    return min(9.0, 2.2 + 0.32 * longest)


def _block_notes(s: dict, label: str, T: int, x0: float, col: float, bottom: float, top: float) -> list[dict]:
    """The block's sentence label (at the top), its tokens (at 45°, readable and clear of each other) and what is
    left out."""
    notes = [dict(text=f"<b>{esc(label)}</b>", x=x0, y=top, xref="x", yref="y", xanchor="left", yanchor="top",
                  showarrow=False, font=dict(size=11, color="#263238"), name="glyph-sentence",
                  hovertext=esc(s.get("text", "")))]
    for t, tok in enumerate(s["tokens"][:T]):
        notes.append(dict(text=esc(tok), x=x0 + (t + 0.5) * col, y=0.9, xref="x", yref="y", textangle=-45,
                          yanchor="bottom", xanchor="left", showarrow=False, font=dict(size=10, color="#37474f"),
                          name="glyph-token"))
    if len(s["tokens"]) > T:
        notes.append(dict(text=f"… {len(s['tokens']) - T} more words of {esc(label)}: see the glyph card", x=x0,
                          y=bottom + 0.6, xref="x", yref="y", xanchor="left", yanchor="top", showarrow=False,
                          font=dict(size=10, color="#78909c")))
    return notes


def beside_chips(sentences: Sequence[dict], chip_mid: dict[int, float], chip_rows: dict[int, int],
                 right: float) -> tuple[list[dict], list[dict], list[dict], float]:
    """The glyphs of ``sentences`` as columns left of the memory chips, each cluster's row level with its chip.

    chip_mid/chip_rows: the middle (layout units, y downwards) and number of cell rows of each chip; right: the
    x where the glyphs end. The sentences run left to right in the order added, each block labelled S1, S2, ...
    as in the glyph card. The columns narrow for long sentences and stop at BESIDE_UNITS, saying how many words
    are left to the glyph card. Returns (bar traces, annotations, separator shapes, the leftmost x used).
    Clusters without a chip have no row.
    """
    traces: list[dict] = []
    notes: list[dict] = []
    shapes: list[dict] = []
    if not sentences or not chip_mid:
        return traces, notes, shapes, right
    scale = glyph_scale(sentences)
    legend_done = {"p", "a+", "a-", "d+", "d-"}     # the glyph card's legend explains the bars
    mids = np.array([chip_mid.get(j, np.nan) for j in range(max(chip_mid) + 1)])
    heights = np.array([chip_rows.get(j, 0) + 1.2 for j in range(max(chip_mid) + 1)])
    bottom = float(np.nanmax(mids + heights / 2))
    total = sum(len(s["tokens"]) for s in sentences)
    col = float(np.clip(BESIDE_UNITS / max(total, 1), MIN_COLUMN, GLYPH_COLUMN))
    blocks = _blocks(sentences, col, right)
    for si, T, x0 in blocks:
        s = sentences[si]
        m = s["measures"]
        m = m[m["cluster"].isin(list(chip_mid)) & (m["position"] < T)]
        traces += glyph_bars(m, s["tokens"], lambda p, x0=x0: x0 + (p + 0.5) * col, lambda c: mids[c],
                             lambda c: heights[c], col, scale, -1.0, legend_done)
        notes += _block_notes(s, sentence_label(si), T, x0, col, bottom, -0.5 - head_room(sentences))
        if si:
            shapes.append(dict(type="line", x0=x0 - BLOCK_GAP / 2, x1=x0 - BLOCK_GAP / 2, y0=-0.2, y1=bottom + 0.5,
                               line=dict(color="#cfd8dc", width=1), layer="below"))
    return traces, notes, shapes, (blocks[0][2] - 0.5 if blocks else right)


def sentence_label(i: int) -> str:
    """'S1' for the first sentence shown: the glyph card and the blocks beside the chips share the numbering."""
    return f"S{i + 1}"
