"""The detail view: box plots of every unit's response to a word, and a unit's top words."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import (
    NEGATIVE,
    POSITIVE,
    TOOLBAR_BAND,
    Figure,
    axis_style,
    esc,
    message_figure,
    new_figure,
    title,
    top_margin,
)

#: Up to this many units every one is labelled on the x axis; beyond, every LABEL_EVERY-th (in the order drawn)
#: and the selected unit, so that a unit can be found without hovering.
LABEL_ALL, LABEL_EVERY = 40, 5


def _unit_ticks(cats: list[str], unit: int | None) -> dict:
    """The x axis' tick labels: every unit, or every LABEL_EVERY-th and the selected one (in bold)."""
    picked = f"u{unit}" if unit is not None else None
    every = 1 if len(cats) <= LABEL_ALL else LABEL_EVERY
    shown = [c for i, c in enumerate(cats) if i % every == 0 or c == picked]
    ticks = dict(tickmode="array", tickvals=shown, ticktext=[f"<b>{c}</b>" if c == picked else c for c in shown],
                 tickfont=dict(size=10), automargin=True)
    return dict(ticks, tickangle=-90) if every > 1 else ticks


def detail_figure(details: dict[str, pd.DataFrame], max_units: int | None = None, unit: int | None = None
                  ) -> Figure:
    """Box plots of every unit's response to each word (whiskers q10–q90), units sorted by median.

    details: word -> frame (unit, n, mean, std, q10, q25, q50, q75, q90). The order of units follows the
    medians of the first word; up to three words are overlaid. Above LABEL_ALL units, every LABEL_EVERY-th unit
    and the selected ``unit`` are labelled.
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
        col = lambda c: np.nan_to_num(d[c].to_numpy(dtype=float)).tolist()  # noqa: E731, B023 - used within this iteration
        data.append(dict(type="box", x=cats, q1=col("q25"), median=col("q50"), q3=col("q75"), lowerfence=col("q10"),
                         upperfence=col("q90"), mean=col("mean"), name=esc(word),
                         marker=dict(color=palette[idx % 3]), line=dict(width=1), boxpoints=False,
                         hovertext=[f"{esc(word)} · unit {u} · n = {int(n)}" for u, n in zip(order, d["n"].fillna(0))],
                         hoverinfo="y+text"))
    return new_figure(data, dict(
        boxmode="group", height=360, hovermode="closest", margin=dict(l=70, r=20, t=top_margin(), b=50),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
        xaxis=axis_style(title=dict(text=f"unit (sorted by median response to {esc(first_word)})"),
                    categoryorder="array", categoryarray=cats, showgrid=False, **_unit_ticks(cats, unit)),
        yaxis=axis_style(title=dict(text="response (whiskers q10–q90, box q25–q75)"), zeroline=True,
                    zerolinecolor="#90a4ae")))


def _ztext(z) -> str:
    return "z —" if z is None or not np.isfinite(z) else f"z {z:+.1f}"


def _unit_word_texts(df: pd.DataFrame, weak: np.ndarray, has_stats: bool) -> tuple[list[str] | None, list[str]]:
    """(bar labels "n=… · z …" or None without the statistics, hover texts) of the rows of ``df``."""
    if not has_stats:
        return None, [f"{esc(w)}: mean {m:+.4g}, frequency {int(f):,}"
                      for w, m, f in zip(df["word"], df["mean"], df["freq"])]
    bar_text = [f"n={int(n)} · {_ztext(z)}" for n, z in zip(df["n"], df["z"])]
    hover = [f"{esc(w)}: mean {m:+.4g}, n = {int(n):,} occurrences, {_ztext(z)}, frequency {int(f):,}"
             + ("<br>weak: too few occurrences or |z| too small to tell from noise" if wk else "")
             for w, m, n, z, f, wk in zip(df["word"], df["mean"], df["n"], df["z"], df["freq"], weak)]
    return bar_text, hover


def _unit_word_bar(df: pd.DataFrame, weak: np.ndarray, labels: list[str], has_stats: bool) -> dict:
    """The bar trace: red/blue by sign, pale and hatched where weak, labelled with n and z when known."""
    bar_text, hover = _unit_word_texts(df, weak, has_stats)
    colors = [("#e6b0aa" if wk else POSITIVE) if v >= 0 else ("#a9cce3" if wk else NEGATIVE)
              for v, wk in zip(df["mean"], weak)]
    bar = dict(type="bar", x=df["mean"].tolist(), y=labels, orientation="h", hovertext=hover, hoverinfo="text",
               marker=dict(color=colors, pattern=dict(shape=["/" if wk else "" for wk in weak], fgcolor="#78909c")))
    if bar_text is not None:
        bar.update(text=bar_text, textposition="auto", insidetextanchor="middle", textfont=dict(size=10))
    return bar


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
    bar = _unit_word_bar(df, weak, labels, has_stats)
    height = max(300, 18 * len(df) + 90)
    head = title(f"unit {unit}: the words it responds to most and least")
    if has_stats:   # plotly's own subtitle, the pair hung from below the toolbar band: anchored at the plot's top,
        # the subtitle would run into the first row
        head.update(subtitle=dict(text="ranked by mean; n occurrences, z = mean/(std/√n); ? pale hatched: weak "
                                       "(few n or small |z|)", font=dict(size=11, color="#546e7a")),
                    yref="container", y=1 - TOOLBAR_BAND / height, yanchor="top")
    return new_figure([bar], dict(
        height=height, title=head, uniformtext=dict(minsize=10, mode="show"),
        xaxis=axis_style(title=dict(text=f"mean response of unit {unit}"), zeroline=True, zerolinecolor="#90a4ae"),
        yaxis=axis_style(type="category", categoryorder="array", categoryarray=labels, showgrid=False),
        margin=dict(l=110, r=20, t=top_margin(2 if has_stats else 1), b=40)))
