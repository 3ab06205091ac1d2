"""The co-cluster view: memory chips (unit clusters), word clouds (word clusters) and the links between them.

Where everything goes is computed in :mod:`app.figures.cocluster_layout`; here one builder per group of
traces draws it (frames, links, memory cells, words, the POS legend).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import (
    NEGATIVE,
    POS_COLORS,
    POS_NAMES,
    POSITIVE,
    SCALE,
    Figure,
    esc,
    new_figure,
    scatter_trace,
    title,
    top_margin,
)
from .cocluster_layout import PX, CoclusterOptions, Layout, layout
from .glyphs import beside_chips, head_room


def counted(n: int, noun: str) -> str:
    """'1 word', '12 words'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def makeup_text(makeup: dict[str, int], top: int = 3, sep: str = ", ") -> str:
    """'NOUN 12, VERB 5, ADJ 3' : the ``top`` most frequent tags of a cluster with their counts."""
    return sep.join(f"{'punct' if t == '.' else t} {n}" for t, n in list(makeup.items())[:top])


#: Label and hover note of a word cluster whose own unit cluster (same index) has no units.
NO_UNITS = "no units"
NO_UNITS_HOVER = ("<br>no units: co-clustering left unit cluster H{i} empty, so this cloud has no chip of its own"
                  "<br>and its words, sized by their response to that chip, all get the smallest size")


def _cloud_labels(clouds: dict[int, dict], purity: pd.DataFrame | None, wide: bool,
                  chipless: set[int] = frozenset()) -> tuple[list[str], list[str]]:
    """(label text, hover text) of each cloud, in the order of ``clouds``: size, POS make-up, purity vs chance,
    and 'no units' for the clouds in ``chipless``."""
    rows = {} if purity is None or purity.empty else {int(r["cluster"]): r for r in purity.to_dict("records")}
    texts, hovers = [], []
    for i, c in clouds.items():
        lone = f" · {NO_UNITS}" if i in chipless else ""
        head = f"W{i} · {counted(c['n'], 'word')}{lone}"
        hover = f"word cluster W{i}: {counted(c['n'], 'word')}, showing {len(c['df'])} (click to highlight)"
        if i in chipless:
            hover += NO_UNITS_HOVER.format(i=i)
        r = rows.get(int(i))
        if r is not None:
            pur = f"purity {r['purity']:.2f} (chance {r['shuffled']:.2f})"
            texts.append(f"{head} · {esc(makeup_text(r['makeup']))} · {pur}" if wide else
                         f"W{i} · {c['n']}{lone} · POS {r['purity']:.2f} ({r['shuffled']:.2f})")
            hover += (f"<br>POS make-up ({r['words']} tagged): {esc(makeup_text(r['makeup'], top=6))}"
                      f"<br>POS purity {r['purity']:.2f}: share of its words tagged {esc(r['majority'])}"
                      f"<br>chance (tags shuffled over all clustered words): {r['shuffled']:.2f} "
                      f"± {r['shuffled_std']:.2f}")
        else:
            texts.append(head)
        hovers.append(hover)
    return texts, hovers


def _bezier(x0: float, y0: float, x1: float, y1: float, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 1, n)
    cx = (x0 + x1) / 2
    xs = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * cx + 3 * (1 - t) * t ** 2 * cx + t ** 3 * x1
    ys = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
    return xs, ys



def _visible_links(lay: Layout, edges: np.ndarray, opts: CoclusterOptions) -> list[tuple[int, int, float, float]]:
    """(cloud, chip, e, |e| relative to the strongest) of each link within the filter."""
    lo, hi = opts.links
    emax = opts_max(edges)
    visible = []
    if emax > 0:
        for i in lay.clouds:
            for j in lay.chip_mid:
                e = edges[i, j]
                if np.isfinite(e) and lo - 1e-9 <= abs(e) / emax <= hi + 1e-9:
                    visible.append((i, j, float(e), abs(e) / emax))
    return visible


def _emphasis(lay: Layout, visible: list, opts: CoclusterOptions) -> tuple[set[int], set[int]]:
    """(clouds, chips) drawn in full: all of them, or the selected one and what its links reach."""
    hot_clouds: set[int] = set(lay.clouds)
    hot_chips: set[int] = set(lay.chip_mid)
    if opts.chip is not None and opts.chip in lay.chip_mid:
        hot_chips = {opts.chip}
        hot_clouds = {i for i, j, *_ in visible if j == opts.chip} | ({opts.chip} & set(lay.clouds))
    elif opts.cloud is not None and opts.cloud in lay.clouds:
        hot_clouds = {opts.cloud}
        hot_chips = {j for i, j, *_ in visible if i == opts.cloud} | ({opts.cloud} & set(lay.chip_mid))
    return hot_clouds, hot_chips


def _frames(lay: Layout, hot_clouds: set[int], opts: CoclusterOptions) -> list[dict]:
    """The boxes around the clouds and the chips."""
    shapes = []
    for i, c in lay.clouds.items():
        selected = opts.cloud == i
        shapes.append(dict(type="rect", x0=lay.x_cloud, x1=lay.x_cloud + opts.cloud_width, y0=c["top"],
                           y1=c["top"] + c["h"],
                           line=dict(color="#37474f" if selected else "#cfd8dc", width=2 if selected else 1),
                           fillcolor="#fafcfd" if i in hot_clouds else "#f3f3f3", layer="below"))
    for j, t in lay.chip_top.items():
        selected = opts.chip == j
        shapes.append(dict(type="rect", x0=-0.2, x1=lay.columns + 0.2, y0=t - 0.2, y1=t + lay.chip_rows(j) + 0.2,
                           line=dict(color="#37474f" if selected else "#b0bec5", width=2 if selected else 1),
                           fillcolor="rgba(0,0,0,0)", layer="below"))
    return shapes


def _link_traces(lay: Layout, visible: list, hot_clouds: set[int], hot_chips: set[int],
                 opts: CoclusterOptions) -> list[dict]:
    """The links, binned by width so that a few traces draw them all, and their weights on hover."""
    if not visible:
        return []
    bins: dict[tuple[bool, int], tuple[list, list]] = {}
    mids_x, mids_y, mids_text = [], [], []
    for i, j, e, rel in visible:
        cloud = lay.clouds[i]
        xs, ys = _bezier(lay.columns + 0.3, lay.chip_mid[j], lay.x_cloud - 0.2, cloud["top"] + cloud["h"] / 2)
        b = min(5, int(rel * 6))
        dim = not (i in hot_clouds and j in hot_chips)
        bx, by = bins.setdefault((e >= 0, b + (10 if dim else 0)), ([], []))
        bx += xs.tolist() + [None]
        by += ys.tolist() + [None]
        mids_x.append(float(xs[len(xs) // 2]))
        mids_y.append(float(ys[len(ys) // 2]))
        mids_text.append(f"W{i} ↔ H{j}<br>e = {e:+.4g}")
    data = []
    for (pos_sign, b), (bx, by) in sorted(bins.items()):
        dim = b >= 10
        data.append(scatter_trace(x=bx, y=by, mode="lines", hoverinfo="skip", showlegend=False, name="links",
                                  line=dict(color=POSITIVE if pos_sign else NEGATIVE,
                                            width=max(0.6, opts.stroke * (0.8 + (b % 10) * 1.4))),
                                  opacity=0.15 if dim else 0.55))
    data.append(scatter_trace(x=mids_x, y=mids_y, mode="markers", marker=dict(size=9, color="rgba(0,0,0,0)"),
                              hovertext=mids_text, hoverinfo="text", showlegend=False, name="link weights"))
    return data


#: Layout units kept left of everything for the colour key of a clicked word's response. The key is drawn inside
#: the plot area: outside it, plotly pushes the left margin, which squeezes the POS legend into a column.
KEY_UNITS = 7.0


def _short(word: str, most: int = 14) -> str:
    return word if len(word) <= most else word[:most - 1] + "…"


def _cell_marker(lay: Layout, hot_chips: set[int], opts: CoclusterOptions) -> tuple[dict, list[str]]:
    """The memory cells' marker (coloured by the selected word's response, or by strength) and hover lines."""
    u_unit, u_clu = lay.units["unit"].to_numpy(), lay.units["cluster"].to_numpy()
    if opts.word_response is not None:
        resp = np.asarray(opts.word_response, dtype=float)[u_unit]
        marker = dict(color=np.clip(resp, -opts.clip, opts.clip).tolist(), colorscale=SCALE, cmin=-opts.clip,
                      cmax=opts.clip, cmid=0, showscale=True,
                      colorbar=dict(title=dict(text=f"response to<br>{esc(_short(opts.word or ''))}"), len=0.35,
                                    y=1.0, yanchor="top", thickness=12, x=0, xanchor="left", xpad=4))
        resp_text = [f"<br>response to {esc(opts.word)}: {v:+.4g}" for v in resp]
    else:
        strength = lay.units["strength"].to_numpy()
        smax = float(strength.max()) if len(strength) and strength.max() > 0 else 1.0
        marker = dict(color=(strength / smax).tolist(), colorscale=[[0, "#eceff1"], [1, "#455a64"]], cmin=0, cmax=1)
        resp_text = [""] * len(lay.units)
    hl = set(int(x) for x in opts.highlight_units)
    marker.update(symbol="square", size=PX - 2.5,
                  line=dict(width=[2.5 if int(x) in hl else 0.5 for x in u_unit],
                            color=["#111111" if int(x) in hl else "#ffffff" for x in u_unit]),
                  opacity=[1.0 if c in hot_chips else 0.3 for c in u_clu])
    return marker, resp_text


def _unit_traces(lay: Layout, hot_chips: set[int], opts: CoclusterOptions) -> list[dict]:
    """The memory cells and the chips' labels."""
    u = lay.units
    u_unit, u_clu = u["unit"].to_numpy(), u["cluster"].to_numpy()
    marker, resp_text = _cell_marker(lay, hot_chips, opts)
    notes = {int(a): f"<br>✎ {_note_hover(t)}" for a, t in opts.unit_notes.items()}
    cells = scatter_trace(
        x=lay.ux.tolist(), y=lay.uy.tolist(), mode="markers", marker=marker, showlegend=False, name="units",
        customdata=[["unit", int(a), int(b)] for a, b in zip(u_unit, u_clu)],
        hovertext=[f"unit {a} · cluster H{b}<br>strength {s:.4g}{r}{notes.get(int(a), '')}"
                   for a, b, s, r in zip(u_unit, u_clu, u["strength"], resp_text)], hoverinfo="text")
    sizes = lay.sizes
    labels = scatter_trace(
        x=[0.0] * len(lay.chip_top), y=[t - 0.75 for t in lay.chip_top.values()], mode="markers+text",
        text=[f"H{j} · {counted(sizes[j], 'unit')}" for j in lay.chip_top], textposition="middle right",
        marker=dict(size=9, color="#607d8b", symbol="triangle-right"), textfont=dict(size=11, color="#546e7a"),
        customdata=[["chip", int(j)] for j in lay.chip_top], hoverinfo="text",
        hovertext=[f"unit cluster H{j}: {counted(sizes[j], 'unit')} (click to highlight)" for j in lay.chip_top],
        showlegend=False, name="chips")
    return [cells, labels] + _note_markers(lay, opts)


def _note_hover(text: str) -> str:
    """Notes (plain text, one a line) as hover text: escaped, so a '<b>' in a note shows as typed."""
    return "<br>".join(esc(line) for line in text.split("\n"))


def _note_markers(lay: Layout, opts: CoclusterOptions) -> list[dict]:
    """A ✎ marker left of the label of each chip with notes, the notes on hover."""
    noted = [j for j in lay.chip_top if j in opts.chip_notes]
    if not noted:
        return []
    return [scatter_trace(
        x=[-0.55] * len(noted), y=[lay.chip_top[j] - 0.75 for j in noted], mode="text", text=["✎"] * len(noted),
        textfont=dict(size=13, color="#e65100"), customdata=[["chip", int(j)] for j in noted], hoverinfo="text",
        hovertext=[f"notes on H{j}:<br>{_note_hover(opts.chip_notes[j])}" for j in noted], showlegend=False,
        name="notes")]


def _word_points(lay: Layout, hot_clouds: set[int], opts: CoclusterOptions) -> dict[str, list]:
    """Every shown word's position, text, size, colour, customdata, hover text and opacity."""
    pts: dict[str, list] = {k: [] for k in ("x", "y", "text", "size", "color", "customdata", "hover", "opacity")}
    sel = set(opts.selected_words)
    for i, c in lay.clouds.items():
        df = c["df"]
        for (px, py), f, word, tag, freq, strength in zip(c["pos"], c["fonts"], df["word"].astype(str), df["pos"],
                                                          df["freq"], df["strength"]):
            tag = str(tag or "")
            pts["x"].append(lay.x_cloud + px)
            pts["y"].append(c["top"] + 1.0 + py)
            pts["text"].append(f"<b>{esc(word)}</b>" if word in sel else esc(word))
            pts["size"].append(f)
            pts["color"].append(POS_COLORS.get(tag, "#444444") if opts.pos else "#37474f")
            pts["customdata"].append(["word", word, int(i)])
            pts["hover"].append(f"<b>{esc(word)}</b> · W{i}<br>POS {esc(POS_NAMES.get(tag, tag))}<br>"
                                f"frequency {int(freq):,}<br>mean |response| to H{i}: {strength:.4g}")
            pts["opacity"].append(1.0 if i in hot_clouds else 0.3)
    return pts


def _word_traces(lay: Layout, hot_clouds: set[int], opts: CoclusterOptions) -> list[dict]:
    """The selected words' highlight, the words and the clouds' labels."""
    pts = _word_points(lay, hot_clouds, opts)
    sel = set(opts.selected_words)
    data = []
    if sel:
        data.append(scatter_trace(x=[x for x, cd in zip(pts["x"], pts["customdata"]) if cd[1] in sel],
                                  y=[y for y, cd in zip(pts["y"], pts["customdata"]) if cd[1] in sel],
                                  mode="markers", hoverinfo="skip", showlegend=False, name="selected",
                                  marker=dict(size=26, color="rgba(255, 213, 79, 0.55)", symbol="square")))
    text_colors = [c if o == 1.0 else "#b0bec5" for c, o in zip(pts["color"], pts["opacity"])]
    data.append(scatter_trace(
        x=pts["x"], y=pts["y"], mode="text+markers", text=pts["text"],
        textfont=dict(size=pts["size"], color=text_colors),
        marker=dict(size=[max(8.0, s) for s in pts["size"]], color="rgba(0,0,0,0)"),
        customdata=pts["customdata"], hovertext=pts["hover"], hoverinfo="text", showlegend=False, name="words"))
    clouds = lay.clouds
    cloud_text, cloud_hover = _cloud_labels(clouds, opts.purity, wide=opts.cloud_width >= 30,
                                            chipless=set(clouds) - set(lay.chip_mid))
    data.append(scatter_trace(
        x=[lay.x_cloud + 0.3] * len(clouds), y=[c["top"] + 0.55 for c in clouds.values()], mode="markers+text",
        text=cloud_text, textposition="middle right",
        marker=dict(size=9, color="#607d8b", symbol="circle"), textfont=dict(size=11, color="#546e7a"),
        customdata=[["cloud", int(i)] for i in clouds], hoverinfo="text",
        hovertext=cloud_hover, showlegend=False, name="clouds"))
    return data


def _pos_legend(words: pd.DataFrame) -> list[dict]:
    """A legend entry per POS colour present."""
    order_tags = list(POS_COLORS)
    present = sorted({str(t or "") for t in words["pos"]}, key=lambda t: order_tags.index(t) if t in order_tags else 99)
    return [scatter_trace(x=[None], y=[None], mode="markers", name=esc(POS_NAMES.get(tag, tag)),
                          marker=dict(size=10, color=POS_COLORS.get(tag, "#444444"), symbol="square"),
                          showlegend=True, hoverinfo="skip") for tag in present]


DEFAULT_OPTIONS = CoclusterOptions()


def cocluster_figure(words: pd.DataFrame, units: pd.DataFrame, edges: np.ndarray,
                     opts: CoclusterOptions = DEFAULT_OPTIONS) -> Figure:
    """Memory chips (left), word clouds (right) and the links between them.

    words: word, freq, pos, cluster, strength (mean |s| towards the paired unit cluster);
    units: unit, cluster, rank (order inside the chip), strength; edges [k, k] e(W_i, H_j).
    customdata of points: ["unit", unit, cluster] for cells, ["word", word, cluster] for words,
    ["cloud", i] for a cloud's label, ["chip", j] for a chip's label, ["glyph", position, cluster] for the bars
    of the sentence glyphs beside the chips (``opts.glyphs``).
    """
    lay = layout(words, units, edges.shape[0], opts)
    visible = _visible_links(lay, edges, opts)
    hot_clouds, hot_chips = _emphasis(lay, visible, opts)
    shapes = _frames(lay, hot_clouds, opts)
    data = _link_traces(lay, visible, hot_clouds, hot_chips, opts) + _unit_traces(lay, hot_chips, opts) \
        + _word_traces(lay, hot_clouds, opts)
    legend = opts.pos and opts.pos_legend
    if legend:
        data += _pos_legend(words)
    # -- sentence glyphs left of the chips, a row level with each chip, the tokens written above
    left, head, notes = -1.0, 0.0, []
    if opts.glyphs:
        rows = {j: lay.chip_rows(j) for j in lay.chip_mid}
        bars, notes, lines, left = beside_chips(opts.glyphs, lay.chip_mid, rows, right=-1.2)
        data[:0] = bars
        shapes += lines
        head = head_room(opts.glyphs)
    if opts.word_response is not None:
        left -= KEY_UNITS
    width_units = lay.x_cloud + opts.cloud_width + 1
    margin_top = top_margin() if (opts.title or legend) else 10   # title or POS legend top left, toolbar top right
    return new_figure(data, dict(
        shapes=shapes, annotations=notes, height=int((lay.height + head) * PX + 60 + margin_top),
        width=int((width_units - left) * PX + 60), barmode="overlay", bargap=0,
        xaxis=dict(visible=False, range=[left, width_units]),
        yaxis=dict(visible=False, range=[lay.height, -0.5 - head]),
        margin=dict(l=30, r=10, t=margin_top, b=10), dragmode="pan", hovermode="closest",
        legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0, xanchor="left", font=dict(size=11),
                    traceorder="normal"),
        title=title(esc(opts.title)) if opts.title else None, clickmode="event"))


def opts_max(edges: np.ndarray) -> float:
    finite = np.abs(edges[np.isfinite(edges)])
    return float(finite.max()) if finite.size else 0.0
