"""Where everything of the co-cluster view goes: the view's options, the chips and the word clouds.

Chips are stacked top to bottom, one block of cells per unit cluster. The word-cloud layout is our own (no
``wordcloud`` package): a deterministic flow layout. Words are sorted by strength (then alphabetically),
sized linearly between ``FONT_MIN`` and ``FONT_MAX`` px, and packed left to right into centred rows of the
cloud's width, using an estimated glyph width of 0.6 em; the same input always gives the same picture.
Aligned clouds sit level with their paired chip where room allows. :mod:`app.figures.cocluster` draws it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["FONT_MIN", "FONT_MAX", "PX", "LINK_GAP", "CLOUD_W", "CoclusterOptions", "Layout", "layout"]

FONT_MIN, FONT_MAX = 11.0, 26.0
PX = 14.0          # pixels per layout unit in the co-cluster view (a chip cell is one unit)
LINK_GAP = 9.0     # units between the chips and the clouds
CLOUD_W = 40.0     # units of width of a word cloud


@dataclass(frozen=True)
class CoclusterOptions:
    """What the control panel sets for the co-cluster view.

    links: range of |e| relative to the strongest link (0..1) that is drawn; clip: responses are
    clipped to [-clip, clip] for colour; word_response [H]: the selected word's mean response (colours
    the cells) or None; chip/cloud: the selected unit cluster / word cluster (highlight);
    highlight_units: units drawn with a dark outline (compare: matched units); purity: per word cluster,
    its POS make-up and purity against shuffled tags (:func:`analytics.purity.cluster_purity` frame: cluster,
    words, majority, purity, shuffled, shuffled_std, makeup), shown on each cloud's label, or None; glyphs:
    sentences (as :func:`app.figures.glyph_figure` takes them) drawn left of the chips, each cluster's row of
    glyphs level with its chip (the paper's layout).
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
    glyphs: tuple[dict, ...] = ()
    chip_notes: dict[int, str] = field(default_factory=dict)
    unit_notes: dict[int, str] = field(default_factory=dict)


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


@dataclass
class Layout:
    """Where everything of a co-cluster view goes, in layout units (y grows downwards)."""

    sizes: np.ndarray                  # [k] units per unit cluster
    columns: int                       # cells per chip row
    chip_top: dict[int, float]         # unit cluster -> its chip's top (clusters with units only)
    chip_mid: dict[int, float]         # ... and middle
    units: pd.DataFrame                # sorted by cluster, rank
    ux: np.ndarray                     # [units] cell centres
    uy: np.ndarray
    clouds: dict[int, dict]            # word cluster -> df, fonts, pos, h, n, top
    height: float
    x_cloud: float                     # left edge of the clouds

    def chip_rows(self, j: int) -> int:
        return math.ceil(self.sizes[j] / self.columns)


def _chip_layout(units: pd.DataFrame, k: int) -> tuple[np.ndarray, int, dict[int, float], dict[int, float],
                                                        pd.DataFrame, np.ndarray, np.ndarray, float]:
    """Chips: one block of cells per unit cluster, stacked top to bottom."""
    sizes = np.bincount(units["cluster"].to_numpy(), minlength=k)
    C = _chip_columns(sizes)
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
    u = units.sort_values(["cluster", "rank"]).reset_index(drop=True)
    ux = (u["rank"].to_numpy() % C) + 0.5
    uy = np.array([chip_top[c] for c in u["cluster"].to_numpy()]) + (u["rank"].to_numpy() // C) + 0.5
    return sizes, C, chip_top, chip_mid, u, ux, uy, y


def _cloud_layout(words: pd.DataFrame, chip_mid: dict[int, float], opts: CoclusterOptions
                  ) -> tuple[dict[int, dict], float]:
    """Clouds: the top nwords of each word cluster, by strength; aligned, each level with its paired chip where
    room allows.  Returns the clouds and the bottom of the last one."""
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
    for i in order:
        want = chip_mid[i] - clouds[i]["h"] / 2 if (opts.align and i in chip_mid) else top
        clouds[i]["top"] = max(top, want)
        top = clouds[i]["top"] + clouds[i]["h"] + 0.6
    return clouds, top


def layout(words: pd.DataFrame, units: pd.DataFrame, k: int, opts: CoclusterOptions) -> Layout:
    sizes, C, chip_top, chip_mid, u, ux, uy, chips_h = _chip_layout(units, k)
    clouds, clouds_h = _cloud_layout(words, chip_mid, opts)
    return Layout(sizes, C, chip_top, chip_mid, u, ux, uy, clouds, max(chips_h, clouds_h) + 0.5,
                   C + opts.link_gap)
