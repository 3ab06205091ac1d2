"""Pure figure builders: DataFrames / arrays in, ``plotly.graph_objects.Figure`` out.

No Dash, no store access, no state: the pages call these with what the
reader returned. Every text that reaches plotly goes through :func:`esc`
(plotly renders a few HTML tags inside labels and drops unknown ones, so
``<unk>`` would vanish and user text could inject markup); ``customdata``
keeps the raw values for callbacks.

The word-cloud layout is our own (no ``wordcloud`` package): a deterministic
flow layout. Words are sorted by strength (then alphabetically), sized
linearly between ``FONT_MIN`` and ``FONT_MAX`` px, and packed left to right
into centred rows of the cloud's width, using an estimated glyph width of
0.6 em; the same input always gives the same picture.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "esc", "POS_COLORS", "cocluster_figure", "glyph_figure", "detail_figure", "unit_words_figure",
    "training_curves", "gradient_flow_figure", "contingency_figure", "message_figure", "CoclusterOptions",
    "matched_r_figure", "makeup_text",
]

#: Universal POS tag -> colour (fixed, colour-blind friendly where possible).
POS_COLORS: dict[str, str] = {
    "NOUN": "#1f77b4", "VERB": "#d62728", "ADJ": "#2ca02c", "ADV": "#9467bd", "PRON": "#ff7f0e",
    "DET": "#8c564b", "ADP": "#e377c2", "NUM": "#17becf", "CONJ": "#bcbd22", "PRT": "#7f7f7f",
    ".": "#393b79", "X": "#aaaaaa", "": "#444444",
}
POS_NAMES = {"": "no tag", ".": "punctuation"}
POSITIVE, NEGATIVE = "#c0392b", "#2471a3"
CLASS_COLORS = {"positive": "#2e7d32", "pos": "#2e7d32", "negative": "#c62828", "neg": "#c62828"}     # link colours: sign of e(W_i, H_j) (RdBu reversed)
SCALE = "RdBu_r"
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=12, color="#263238")
FONT_MIN, FONT_MAX = 11.0, 26.0
PX = 14.0          # pixels per layout unit in the co-cluster view (a chip cell is one unit)
LINK_GAP = 9.0     # units between the chips and the clouds
CLOUD_W = 40.0     # units of width of a word cloud


def esc(text: object) -> str:
    """Text safe to show in a plotly label (entities, not tags)."""
    return html.escape(str(text), quote=False)


Figure = dict  # a plotly figure spec: {"data": [trace dicts], "layout": {...}}


def _figure(data: list[dict], layout: dict) -> Figure:
    """A figure spec with the common look. Builders return plain dicts (what ``go.Figure(spec)`` takes):
    constructing ``go.Figure`` objects validates every property and costs 100-400 ms on a large view,
    more than the dashboard's whole latency budget; dcc.Graph takes the dict as is."""
    base = dict(template="plotly_white", font=FONT, margin=dict(l=40, r=20, t=40, b=40),
                hoverlabel=dict(font=dict(size=12)), plot_bgcolor="#ffffff", paper_bgcolor="#ffffff")
    return {"data": data, "layout": {**base, **layout}}


def _axis(**kw) -> dict:
    return {"showgrid": True, "gridcolor": "#eceff1", "zeroline": False, "linecolor": "#b0bec5", **kw}


def message_figure(text: str, height: int = 220) -> Figure:
    """An empty figure that says why it is empty."""
    return _figure([], dict(
        height=height, xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=esc(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font=dict(size=14, color="#607d8b"))]))


def to_go(fig: Figure):
    """The spec as a ``plotly.graph_objects.Figure`` (validated; for notebooks and tests)."""
    return go.Figure(fig)


# --------------------------------------------------------------------------- co-cluster view


@dataclass(frozen=True)
class CoclusterOptions:
    """What the control panel sets for the co-cluster view.

    links: range of |e| relative to the strongest link (0..1) that is drawn; clip: responses are
    clipped to [-clip, clip] for colour; word_response [H]: the selected word's mean response (colours
    the cells) or None; chip/cloud: the selected unit cluster / word cluster (highlight);
    highlight_units: units drawn with a dark outline (compare: matched units); purity: per word cluster,
    its POS make-up and purity against shuffled tags (:func:`analytics.purity.cluster_purity` frame: cluster,
    words, majority, purity, shuffled, shuffled_std, makeup), shown on each cloud's label, or None.
    """

    nwords: int = 20
    stroke: float = 1.0
    links: tuple[float, float] = (0.1, 1.0)
    pos: bool = True
    align: bool = True
    clip: float = 0.25
    word: str | None = None
    word_response: np.ndarray | None = None
    selected_words: tuple[str, ...] = ()
    chip: int | None = None
    cloud: int | None = None
    highlight_units: tuple[int, ...] = ()
    title: str | None = None
    cloud_width: float = CLOUD_W
    link_gap: float = LINK_GAP
    pos_legend: bool = True
    purity: pd.DataFrame | None = None


def makeup_text(makeup: dict[str, int], top: int = 3, sep: str = ", ") -> str:
    """'NOUN 12, VERB 5, ADJ 3' : the ``top`` most frequent tags of a cluster with their counts."""
    return sep.join(f"{'punct' if t == '.' else t} {n}" for t, n in list(makeup.items())[:top])


def _cloud_labels(clouds: dict[int, dict], purity: pd.DataFrame | None, wide: bool) -> tuple[list[str], list[str]]:
    """(label text, hover text) of each cloud, in the order of ``clouds``: size, POS make-up, purity vs chance."""
    rows = {} if purity is None or purity.empty else {int(r["cluster"]): r for r in purity.to_dict("records")}
    texts, hovers = [], []
    for i, c in clouds.items():
        head = f"W{i} · {c['n']} words"
        hover = f"word cluster W{i}: {c['n']} words, showing {len(c['df'])} (click to highlight)"
        r = rows.get(int(i))
        if r is not None:
            pur = f"purity {r['purity']:.2f} (chance {r['shuffled']:.2f})"
            texts.append(f"{head} · {esc(makeup_text(r['makeup']))} · {pur}" if wide else
                         f"W{i} · {c['n']} · POS {r['purity']:.2f} ({r['shuffled']:.2f})")
            hover += (f"<br>POS make-up ({r['words']} tagged): {esc(makeup_text(r['makeup'], top=6))}"
                      f"<br>POS purity {r['purity']:.2f}: share of its words tagged {esc(r['majority'])}"
                      f"<br>chance (tags shuffled over all clustered words): {r['shuffled']:.2f} "
                      f"± {r['shuffled_std']:.2f}")
        else:
            texts.append(head)
        hovers.append(hover)
    return texts, hovers


def _chip_columns(sizes: np.ndarray) -> int:
    biggest = int(sizes.max()) if len(sizes) else 1
    return int(min(16, max(4, math.ceil(math.sqrt(biggest * 2)))))


def _pack_cloud(words: Sequence[str], fonts: Sequence[float], width: float) -> tuple[list[tuple[float, float]], float]:
    """Flow layout of words (already ordered) into centred rows of ``width`` units.

    Returns ([(x, y) centre of each word relative to the cloud's top-left, y downwards], height).
    """
    rows: list[list[int]] = [[]]
    row_w = 0.0
    wide = [(len(w) * 0.6 * f + 0.9 * f) / PX for w, f in zip(words, fonts)]  # text + padding, in units
    for i, w in enumerate(wide):
        if rows[-1] and row_w + w > width:
            rows.append([])
            row_w = 0.0
        rows[-1].append(i)
        row_w += w
    pos: list[tuple[float, float]] = [(0.0, 0.0)] * len(words)
    y = 0.4
    for row in rows:
        if not row:
            continue
        h = max(fonts[i] for i in row) * 1.25 / PX
        total = sum(wide[i] for i in row)
        x = (width - total) / 2
        for i in row:
            pos[i] = (x + wide[i] / 2, y + h / 2)
            x += wide[i]
        y += h
    return pos, y + 0.4


def _bezier(x0: float, y0: float, x1: float, y1: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 1, n)
    cx = (x0 + x1) / 2
    xs = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * cx + 3 * (1 - t) * t ** 2 * cx + t ** 3 * x1
    ys = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
    return xs, ys


def _scatter(**kw) -> dict:
    return {"type": "scatter", **kw}


def cocluster_figure(words: pd.DataFrame, units: pd.DataFrame, edges: np.ndarray,
                     opts: CoclusterOptions = CoclusterOptions()) -> Figure:
    """Memory chips (left), word clouds (right) and the links between them.

    words: word, freq, pos, cluster, strength (mean |s| towards the paired unit cluster);
    units: unit, cluster, rank (order inside the chip), strength; edges [k, k] e(W_i, H_j).
    customdata of points: ["unit", unit, cluster] for cells, ["word", word, cluster] for words,
    ["cloud", i] for a cloud's label, ["chip", j] for a chip's label.
    """
    k = edges.shape[0]
    sizes = np.bincount(units["cluster"].to_numpy(), minlength=k)
    C = _chip_columns(sizes)
    data: list[dict] = []

    # -- chips: one block of cells per unit cluster, stacked top to bottom (y grows downwards)
    chip_top: dict[int, float] = {}
    chip_mid: dict[int, float] = {}
    y = 1.5
    for j in range(k):
        if sizes[j] == 0:
            continue
        rows = math.ceil(sizes[j] / C)
        chip_top[j] = y
        chip_mid[j] = y + rows / 2
        y += rows + 2.0
    chips_h = y
    u = units.sort_values(["cluster", "rank"]).reset_index(drop=True)
    u_unit = u["unit"].to_numpy()
    u_clu = u["cluster"].to_numpy()
    ux = (u["rank"].to_numpy() % C) + 0.5
    uy = np.array([chip_top[c] for c in u_clu]) + (u["rank"].to_numpy() // C) + 0.5

    # -- clouds: the top nwords of each word cluster, by strength
    fmax = float(words["strength"].max()) if len(words) else 1.0
    fmax = fmax if fmax > 0 else 1.0
    clouds: dict[int, dict] = {}
    for i, w in words.groupby("cluster", sort=True):
        w = w.sort_values(["strength", "word"], ascending=[False, True])
        n_all = len(w)
        w = w.head(opts.nwords)
        fonts = (FONT_MIN + (FONT_MAX - FONT_MIN) * (w["strength"].to_numpy() / fmax)).tolist()
        pos, height = _pack_cloud(w["word"].astype(str).tolist(), fonts, opts.cloud_width)
        clouds[int(i)] = {"df": w, "fonts": fonts, "pos": pos, "h": height + 1.2, "n": n_all}
    order = sorted(clouds)
    if not opts.align:
        order.sort(key=lambda i: -clouds[i]["n"])
    top = 0.3
    for i in order:   # aligned: each cloud level with its paired chip where room allows
        want = chip_mid[i] - clouds[i]["h"] / 2 if (opts.align and i in chip_mid) else top
        clouds[i]["top"] = max(top, want)
        top = clouds[i]["top"] + clouds[i]["h"] + 0.6
    total_h = max(chips_h, top) + 0.5
    x_cloud = C + opts.link_gap

    # -- links within the filter, and what a selection emphasises
    lo, hi = opts.links
    emax = opts_max(edges)
    visible = []
    if emax > 0:
        for i in clouds:
            for j in chip_mid:
                e = edges[i, j]
                if np.isfinite(e) and lo - 1e-9 <= abs(e) / emax <= hi + 1e-9:
                    visible.append((i, j, float(e), abs(e) / emax))
    hot_clouds: set[int] = set(clouds)
    hot_chips: set[int] = set(chip_mid)
    if opts.chip is not None and opts.chip in chip_mid:
        hot_chips = {opts.chip}
        hot_clouds = {i for i, j, *_ in visible if j == opts.chip} | ({opts.chip} & set(clouds))
    elif opts.cloud is not None and opts.cloud in clouds:
        hot_clouds = {opts.cloud}
        hot_chips = {j for i, j, *_ in visible if i == opts.cloud} | ({opts.cloud} & set(chip_mid))

    shapes = []
    for i, c in clouds.items():
        selected = opts.cloud == i
        shapes.append(dict(type="rect", x0=x_cloud, x1=x_cloud + opts.cloud_width, y0=c["top"], y1=c["top"] + c["h"],
                           line=dict(color="#37474f" if selected else "#cfd8dc", width=2 if selected else 1),
                           fillcolor="#fafcfd" if i in hot_clouds else "#f3f3f3", layer="below"))
    for j, t in chip_top.items():
        rows = math.ceil(sizes[j] / C)
        selected = opts.chip == j
        shapes.append(dict(type="rect", x0=-0.2, x1=C + 0.2, y0=t - 0.2, y1=t + rows + 0.2,
                           line=dict(color="#37474f" if selected else "#b0bec5", width=2 if selected else 1),
                           fillcolor="rgba(0,0,0,0)", layer="below"))

    # links, binned by width so that a few traces draw them all
    if visible:
        bins: dict[tuple[bool, int], tuple[list, list]] = {}
        mids_x, mids_y, mids_text = [], [], []
        for i, j, e, rel in visible:
            xs, ys = _bezier(C + 0.3, chip_mid[j], x_cloud - 0.2, clouds[i]["top"] + clouds[i]["h"] / 2)
            b = min(5, int(rel * 6))
            dim = not (i in hot_clouds and j in hot_chips)
            bx, by = bins.setdefault((e >= 0, b + (10 if dim else 0)), ([], []))
            bx += xs.tolist() + [None]
            by += ys.tolist() + [None]
            mids_x.append(float(xs[len(xs) // 2]))
            mids_y.append(float(ys[len(ys) // 2]))
            mids_text.append(f"W{i} ↔ H{j}<br>e = {e:+.4g}")
        for (pos_sign, b), (bx, by) in sorted(bins.items()):
            dim = b >= 10
            data.append(_scatter(x=bx, y=by, mode="lines", hoverinfo="skip", showlegend=False, name="links",
                                 line=dict(color=POSITIVE if pos_sign else NEGATIVE,
                                           width=max(0.6, opts.stroke * (0.8 + (b % 10) * 1.4))),
                                 opacity=0.15 if dim else 0.55))
        data.append(_scatter(x=mids_x, y=mids_y, mode="markers", marker=dict(size=9, color="rgba(0,0,0,0)"),
                             hovertext=mids_text, hoverinfo="text", showlegend=False, name="link weights"))

    # -- memory cells
    if opts.word_response is not None:
        resp = np.asarray(opts.word_response, dtype=float)[u_unit]
        marker = dict(color=np.clip(resp, -opts.clip, opts.clip).tolist(), colorscale=SCALE, cmin=-opts.clip,
                      cmax=opts.clip, cmid=0, showscale=True,
                      colorbar=dict(title=dict(text=f"response to<br>{esc(opts.word or '')}"), len=0.35, y=1.0,
                                    yanchor="top", thickness=12, x=-0.01, xanchor="right"))
        resp_text = [f"<br>response to {esc(opts.word)}: {v:+.4g}" for v in resp]
    else:
        strength = u["strength"].to_numpy()
        smax = float(strength.max()) if len(strength) and strength.max() > 0 else 1.0
        marker = dict(color=(strength / smax).tolist(), colorscale=[[0, "#eceff1"], [1, "#455a64"]], cmin=0, cmax=1)
        resp_text = [""] * len(u)
    hl = set(int(x) for x in opts.highlight_units)
    marker.update(symbol="square", size=PX - 2.5,
                  line=dict(width=[2.5 if int(x) in hl else 0.5 for x in u_unit],
                            color=["#111111" if int(x) in hl else "#ffffff" for x in u_unit]),
                  opacity=[1.0 if c in hot_chips else 0.3 for c in u_clu])
    data.append(_scatter(
        x=ux.tolist(), y=uy.tolist(), mode="markers", marker=marker, showlegend=False, name="units",
        customdata=[["unit", int(a), int(b)] for a, b in zip(u_unit, u_clu)],
        hovertext=[f"unit {a} · cluster H{b}<br>strength {s:.4g}{r}"
                   for a, b, s, r in zip(u_unit, u_clu, u["strength"], resp_text)], hoverinfo="text"))
    data.append(_scatter(
        x=[0.0] * len(chip_top), y=[t - 0.75 for t in chip_top.values()], mode="markers+text",
        text=[f"H{j} · {sizes[j]} units" for j in chip_top], textposition="middle right",
        marker=dict(size=9, color="#607d8b", symbol="triangle-right"), textfont=dict(size=11, color="#546e7a"),
        customdata=[["chip", int(j)] for j in chip_top], hoverinfo="text",
        hovertext=[f"unit cluster H{j}: {sizes[j]} units (click to highlight)" for j in chip_top],
        showlegend=False, name="chips"))

    # -- words
    xs, ys, texts, sizes_px, colors, cdata, hover, opac_w = [], [], [], [], [], [], [], []
    sel = set(opts.selected_words)
    for i, c in clouds.items():
        df = c["df"]
        for (px, py), f, word, tag, freq, strength in zip(c["pos"], c["fonts"], df["word"].astype(str), df["pos"],
                                                          df["freq"], df["strength"]):
            tag = str(tag or "")
            xs.append(x_cloud + px)
            ys.append(c["top"] + 1.0 + py)
            texts.append(f"<b>{esc(word)}</b>" if word in sel else esc(word))
            sizes_px.append(f)
            colors.append(POS_COLORS.get(tag, "#444444") if opts.pos else "#37474f")
            cdata.append(["word", word, int(i)])
            hover.append(f"<b>{esc(word)}</b> · W{i}<br>POS {esc(POS_NAMES.get(tag, tag))}<br>"
                         f"frequency {int(freq):,}<br>mean |response| to H{i}: {strength:.4g}")
            opac_w.append(1.0 if i in hot_clouds else 0.3)
    if sel:
        data.append(_scatter(x=[x for x, cd in zip(xs, cdata) if cd[1] in sel],
                             y=[y for y, cd in zip(ys, cdata) if cd[1] in sel], mode="markers", hoverinfo="skip",
                             showlegend=False, name="selected",
                             marker=dict(size=26, color="rgba(255, 213, 79, 0.55)", symbol="square")))
    text_colors = [c if o == 1.0 else "#b0bec5" for c, o in zip(colors, opac_w)]
    data.append(_scatter(
        x=xs, y=ys, mode="text+markers", text=texts, textfont=dict(size=sizes_px, color=text_colors),
        marker=dict(size=[max(8.0, s) for s in sizes_px], color="rgba(0,0,0,0)"),
        customdata=cdata, hovertext=hover, hoverinfo="text", showlegend=False, name="words"))
    cloud_text, cloud_hover = _cloud_labels(clouds, opts.purity, wide=opts.cloud_width >= 30)
    data.append(_scatter(
        x=[x_cloud + 0.3] * len(clouds), y=[c["top"] + 0.55 for c in clouds.values()], mode="markers+text",
        text=cloud_text, textposition="middle right",
        marker=dict(size=9, color="#607d8b", symbol="circle"), textfont=dict(size=11, color="#546e7a"),
        customdata=[["cloud", int(i)] for i in clouds], hoverinfo="text",
        hovertext=cloud_hover, showlegend=False, name="clouds"))
    if opts.pos and opts.pos_legend:   # legend of the POS colours
        order_tags = list(POS_COLORS)
        present = sorted({str(t or "") for t in words["pos"]},
                         key=lambda t: order_tags.index(t) if t in order_tags else 99)
        for tag in present:
            data.append(_scatter(x=[None], y=[None], mode="markers", name=esc(POS_NAMES.get(tag, tag)),
                                 marker=dict(size=10, color=POS_COLORS.get(tag, "#444444"), symbol="square"),
                                 showlegend=True, hoverinfo="skip"))
    width_units = x_cloud + opts.cloud_width + 1
    return _figure(data, dict(
        shapes=shapes, height=int(total_h * PX + 70), width=int((width_units + 1) * PX + 60),
        xaxis=dict(visible=False, range=[-1.0, width_units]), yaxis=dict(visible=False, range=[total_h, -0.5]),
        margin=dict(l=30, r=10, t=40 if opts.title else 10, b=10), dragmode="pan", hovermode="closest",
        legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right", font=dict(size=11)),
        title=dict(text=esc(opts.title), font=dict(size=14)) if opts.title else None, clickmode="event"))


def opts_max(edges: np.ndarray) -> float:
    finite = np.abs(edges[np.isfinite(edges)])
    return float(finite.max()) if finite.size else 0.0


# --------------------------------------------------------------------------- sentence glyphs


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
                  margin=dict(l=50, r=20, t=50, b=30))
    return _figure(data, layout)


# --------------------------------------------------------------------------- detail view


def detail_figure(details: dict[str, pd.DataFrame], max_units: int | None = None) -> Figure:
    """Box plots of every unit's response to each word (whiskers q10–q90), units sorted by median.

    details: word -> frame (unit, n, mean, std, q10, q25, q50, q75, q90). The order of units follows the
    medians of the first word; up to three words are overlaid.
    """
    details = {w: d for w, d in details.items() if d is not None and len(d)}
    if not details:
        return message_figure("Click a word in a cloud (or pick one above) to see how every unit responds to it.")
    first_word = next(iter(details))
    order = details[first_word].sort_values(["q50", "unit"], ascending=[False, True])["unit"].to_numpy()
    if max_units is not None:
        order = order[:max_units]
    cats = [f"u{u}" for u in order]
    palette = ["#1565c0", "#ef6c00", "#2e7d32"]
    data = []
    for idx, (word, d) in enumerate(details.items()):
        d = d.set_index("unit").reindex(order)
        col = lambda c: np.nan_to_num(d[c].to_numpy(dtype=float)).tolist()  # noqa: E731
        data.append(dict(type="box", x=cats, q1=col("q25"), median=col("q50"), q3=col("q75"), lowerfence=col("q10"),
                         upperfence=col("q90"), mean=col("mean"), name=esc(word),
                         marker=dict(color=palette[idx % 3]), line=dict(width=1), boxpoints=False,
                         hovertext=[f"{esc(word)} · unit {u} · n = {int(n)}" for u, n in zip(order, d["n"].fillna(0))],
                         hoverinfo="y+text"))
    return _figure(data, dict(
        boxmode="group", height=360, hovermode="closest", margin=dict(l=70, r=20, t=40, b=50), legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
        xaxis=_axis(title=dict(text=f"unit (sorted by median response to {esc(first_word)})"),
                    categoryorder="array", categoryarray=cats, showticklabels=len(cats) <= 40, showgrid=False),
        yaxis=_axis(title=dict(text="response (whiskers q10–q90, box q25–q75)"), zeroline=True,
                    zerolinecolor="#90a4ae")))


def unit_words_figure(df: pd.DataFrame, unit: int) -> Figure:
    """The words unit ``unit`` responds to most (top) and least (bottom): horizontal bars of the mean.

    df: word, mean, freq and, when known, n, z (mean / (std/√n)) and weak (bool). Every bar is labelled
    with its n and z; weak rows (too few occurrences, or a z too small to tell from noise) are drawn pale
    and hatched with a "?" before the word, so a one-occurrence word never tops the list unmarked.
    """
    if df.empty:
        return message_figure(f"No words for unit {unit}.")
    df = df.sort_values("mean")
    has_stats = "n" in df.columns and "z" in df.columns
    weak = (df["weak"].fillna(True).astype(bool).to_numpy() if "weak" in df.columns
            else np.zeros(len(df), bool))
    labels = [f"? {esc(w)}" if wk else esc(w) for w, wk in zip(df["word"], weak)]
    ztxt = (lambda z: "z —" if z is None or not np.isfinite(z) else f"z {z:+.1f}")  # noqa: E731
    if has_stats:
        bar_text = [f"n={int(n)} · {ztxt(z)}" for n, z in zip(df["n"], df["z"])]
        hover = [f"{esc(w)}: mean {m:+.4g}, n = {int(n):,} occurrences, {ztxt(z)}, frequency {int(f):,}"
                 + ("<br>weak: too few occurrences or |z| too small to tell from noise" if wk else "")
                 for w, m, n, z, f, wk in zip(df["word"], df["mean"], df["n"], df["z"], df["freq"], weak)]
    else:
        bar_text = None
        hover = [f"{esc(w)}: mean {m:+.4g}, frequency {int(f):,}" for w, m, f in zip(df["word"], df["mean"], df["freq"])]
    colors = [("#e6b0aa" if wk else POSITIVE) if v >= 0 else ("#a9cce3" if wk else NEGATIVE)
              for v, wk in zip(df["mean"], weak)]
    bar = dict(type="bar", x=df["mean"].tolist(), y=labels, orientation="h", hovertext=hover, hoverinfo="text",
               marker=dict(color=colors, pattern=dict(shape=["/" if wk else "" for wk in weak], fgcolor="#78909c")))
    if bar_text is not None:
        bar.update(text=bar_text, textposition="auto", insidetextanchor="middle", textfont=dict(size=10))
    title = f"unit {unit}: the words it responds to most and least"
    if has_stats:
        title += "<br><sup>ranked by mean; n occurrences, z = mean/(std/√n); ? pale hatched: weak (few n or small |z|)</sup>"
    return _figure([bar], dict(
        height=max(300, 18 * len(df) + 90), title=dict(text=title, font=dict(size=14)),
        xaxis=_axis(title=dict(text=f"mean response of unit {unit}"), zeroline=True, zerolinecolor="#90a4ae"),
        yaxis=_axis(type="category", categoryorder="array", categoryarray=labels, showgrid=False),
        margin=dict(l=110, r=20, t=60, b=40)))


# --------------------------------------------------------------------------- models, gradients, overlap

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


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
                data.append(_scatter(
                    x=s["epoch"].tolist(), y=[None if pd.isna(v) else float(v) for v in y], mode="lines+markers",
                    line=dict(color=color, dash=dash), name=f"{esc(model_id)} {split}", legendgroup=esc(model_id),
                    showlegend=col == 1, xaxis="x" if col == 1 else f"x{col}", yaxis="y" if col == 1 else f"y{col}",
                    hovertemplate=f"{esc(model_id)} {split}<br>epoch %{{x}}<br>{metric} %{{y:.4g}}<extra></extra>"))
    layout: dict = dict(height=340, legend=dict(orientation="h", y=-0.3, x=0), annotations=[])
    titles = ("loss", "perplexity (language models)", "accuracy (classifiers)")
    for col in (1, 2, 3):
        lo, hi = (col - 1) / 3 + 0.03, col / 3 - 0.03
        layout["xaxis" if col == 1 else f"xaxis{col}"] = _axis(domain=[lo, hi], title=dict(text="epoch"), dtick=1,
                                                               anchor="y" if col == 1 else f"y{col}")
        layout["yaxis" if col == 1 else f"yaxis{col}"] = _axis(anchor="x" if col == 1 else f"x{col}")
        layout["annotations"].append(dict(text=titles[col - 1], x=(lo + hi) / 2, xref="paper", y=1.02, yref="paper",
                                          yanchor="bottom", showarrow=False, font=dict(size=13)))
    return _figure(data, layout)


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
            data.append(_scatter(
                x=s["distance"].tolist(), y=[float(v) if np.isfinite(v) and v > 0 else None for v in y],
                mode="lines", name=f"{esc(model_id)} layer {layer}",
                line=dict(color=PALETTE[mi % 4], dash="solid" if layer == layers[-1] else "dot", width=2),
                hovertemplate=f"{esc(model_id)} layer {layer}<br>k = %{{x}}<br>norm %{{y:.3e}}<extra></extra>"))
    ys = df["grad_norm"].to_numpy(dtype=np.float64)
    gaps = int((~(np.isfinite(ys) & (ys > 0))).sum())
    ys = ys[np.isfinite(ys) & (ys > 0)]
    yaxis = _axis(title=dict(text="mean norm"), type="log", exponentformat="power", showexponent="all")
    notes = [] if not gaps else [dict(
        text=f"{gaps} point(s) with norm 0 or not finite (underflow) are not drawn", x=1, y=1, xref="paper",
        yref="paper", xanchor="right", yanchor="bottom", showarrow=False, font=dict(size=10, color="#b71c1c"))]
    if ys.size:
        lo, hi = math.floor(math.log10(ys.min())), math.ceil(math.log10(ys.max()))
        hi = max(hi, lo + 1)
        yaxis.update(range=[lo - 0.1, hi + 0.1], dtick=max(1, math.ceil((hi - lo) / 8)))
    return _figure(data, dict(
        height=330, title=dict(text="Gradient flow ‖∂h<sub>t</sub>/∂h<sub>t−k</sub>‖", font=dict(size=14), x=0.02,
                               y=0.97), margin=dict(l=70, r=20, t=60, b=40),
        xaxis=_axis(title=dict(text="k (steps back)")), yaxis=yaxis, annotations=notes,
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
        data.append(_scatter(x=rank, y=lo, mode="lines", line=dict(width=0, color="#90a4ae"), hoverinfo="skip",
                             showlegend=False, name="chance low"))
        data.append(_scatter(x=rank, y=hi, mode="lines", line=dict(width=0, color="#90a4ae"), fill="tonexty",
                             fillcolor="rgba(144,164,174,0.35)", hoverinfo="skip", name=f"chance (min–max of {n} shuffles)"))
        data.append(_scatter(x=rank, y=mid, mode="lines", line=dict(color="#607d8b", dash="dash", width=1.5),
                             name="chance (mean)", hovertemplate="rank %{x}<br>shuffled |r| %{y:.3f}<extra></extra>"))
    data.append(_scatter(x=rank, y=r.tolist(), mode="lines+markers", marker=dict(size=4, color="#1565c0"),
                         line=dict(color="#1565c0", width=2), name="matched |r|",
                         hovertemplate="rank %{x}<br>|r| %{y:.3f}<extra></extra>"))
    title = "matched |r| by rank" if chance is None else f"chance: |r| up to {chance['max']:.2f}"
    return _figure(data, dict(
        height=290, title=dict(text=title, font=dict(size=13), x=0.02, y=0.97), margin=dict(l=50, r=10, t=45, b=95),
        xaxis=_axis(title=dict(text="matched pair, by |r|", font=dict(size=11)), rangemode="tozero"),
        yaxis=_axis(title=dict(text=f"|r| {esc(name_a)} ↔ {esc(name_b)}", font=dict(size=11)), range=[0, 1.02]),
        legend=dict(orientation="h", y=-0.32, yanchor="top", x=0, font=dict(size=10)), hovermode="x unified"))


def contingency_figure(table: pd.DataFrame, name_a: str, name_b: str) -> Figure:
    """Matched unit counts per (cluster of A, cluster of B)."""
    if table.empty:
        return message_figure("No matched units.")
    return _figure([dict(
        type="heatmap", z=table.to_numpy().tolist(), x=[f"H{c}" for c in table.columns],
        y=[f"H{r}" for r in table.index], colorscale="Blues", showscale=False, texttemplate="%{z}",
        hovertemplate=f"{esc(name_a)} %{{y}} × {esc(name_b)} %{{x}}: %{{z}} units<extra></extra>")], dict(
        height=300, margin=dict(l=70, r=10, t=80, b=10),
        xaxis=dict(title=dict(text=esc(name_b)), side="top"), yaxis=dict(title=dict(text=esc(name_a)), autorange="reversed")))
