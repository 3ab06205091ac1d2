"""One row per unit: its overall response, its top and bottom words, its POS selectivity and a one-line description.

Computed at analysis time from the same per-word statistics that ``word_responses`` stores (n, mean and sample
std of the response per (word, unit); see docs/architecture.md, "Responses s(w)"), so every number can be
recomputed from the store in SQL:

- **Overall**: n, mean and std of the unit's response over every token of the split (pooled exactly from the
  per-word n, mean and std).
- **Words**: the 5 words with the highest and the lowest s(w), among words seen at least ``WORD_MIN_N`` times
  (the detail view's "weak" bound), comma-separated.
- **Tags** (``unit_tags``; only where the corpus has gold tags): the tokens are grouped by their word's
  most frequent gold universal POS tag (``vocab.pos``; Brown's tags per word type, not per token); per tag
  n, mean and std of the response pooled over its words, and its selectivity z = (mean_tag − mean_rest) /
  √(var_tag/n_tag + var_rest/n_rest) (Welch's statistic against every other token).  The tag with the largest
  z is ``top_tag``, the one with the smallest ``bottom_tag``.
- **Description**: built only from these numbers, in a fixed order: "+ on TAG (z Z)" when the top tag's
  z >= ``DESCRIBE_Z``, "− on TAG (z Z)" when the bottom tag's z <= −``DESCRIBE_Z``, then "top: w1, w2, w3" and
  "bottom: w1, w2, w3" (the three highest and lowest s(w)).  No language model; the same statistics give the
  same sentence.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .response_stats import ResponseStats

__all__ = ["WORD_MIN_N", "DESCRIBE_Z", "TAG_NAMES", "unit_frames", "describe"]

WORD_MIN_N = 5         # a word needs this many occurrences to be named (the detail view's weak bound)
DESCRIBE_Z = 3.0       # a tag is named in the description at |z| >= this
WORDS = 5              # top and bottom words stored per unit
#: Readable names of the universal tags in descriptions.
TAG_NAMES = {".": "punctuation"}


def _moments(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sample std) from counts n [..., 1], sums of values s1 and of squares s2 [..., H] (float64)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = s1 / n
        var = (s2 - n * mu ** 2) / (n - 1)
    return mu, np.sqrt(np.clip(var, 0, None))


def _sums(stats: ResponseStats) -> tuple[np.ndarray, np.ndarray]:
    """Per word [W, H]: the sum of the values, n·mean, and of their squares, (n−1)·std² + n·mean²."""
    n = stats.n[:, None].astype(np.float64)
    mean, std = stats.mean.astype(np.float64), stats.std.astype(np.float64)
    return n * mean, (n - 1).clip(min=0) * std ** 2 + n * mean ** 2


def _tags(stats: ResponseStats, tags: np.ndarray) -> pd.DataFrame:
    """Per (unit, tag): n, mean, std and Welch z against every other token (tags [W]: the words' tags or '')."""
    names = sorted(set(tags) - {""})
    if not names:
        return pd.DataFrame(columns=["unit", "tag", "n", "mean", "std", "z"])
    onehot = (tags[None, :] == np.array(names, dtype=object)[:, None]).astype(np.float64)     # [G, W]
    s1, s2 = _sums(stats)
    n_t = onehot @ stats.n.astype(np.float64)                                                   # [G]
    g1, g2 = onehot @ s1, onehot @ s2                                                           # [G, H]
    mu_t, sd_t = _moments(n_t[:, None], g1, g2)
    n_r = stats.n.sum() - n_t
    mu_r, sd_r = _moments(n_r[:, None], s1.sum(0)[None] - g1, s2.sum(0)[None] - g2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (mu_t - mu_r) / np.sqrt(sd_t ** 2 / n_t[:, None] + sd_r ** 2 / n_r[:, None])
    G, H = g1.shape
    return pd.DataFrame({"unit": np.tile(np.arange(H, dtype=np.int32), G), "tag": np.repeat(names, H),
                         "n": np.repeat(n_t, H).astype(np.int64), "mean": mu_t.ravel(), "std": sd_t.ravel(),
                         "z": np.where(np.isfinite(z), z, np.nan).ravel()})


def _tag_name(tag: str) -> str:
    return TAG_NAMES.get(tag, tag)


def describe(top_tag: str | None, top_z: float, bottom_tag: str | None, bottom_z: float,
             top_words: Sequence[str], bottom_words: Sequence[str]) -> str:
    """The one-line description (see the module docstring): only the numbers given, in a fixed order."""
    parts = []
    if top_tag and np.isfinite(top_z) and top_z >= DESCRIBE_Z:
        parts.append(f"+ on {_tag_name(top_tag)} (z {top_z:.1f})")
    if bottom_tag and np.isfinite(bottom_z) and bottom_z <= -DESCRIBE_Z:
        parts.append(f"− on {_tag_name(bottom_tag)} (z {bottom_z:.1f})")
    if top_words:
        parts.append("top: " + ", ".join(top_words[:3]))
    if bottom_words:
        parts.append("bottom: " + ", ".join(bottom_words[:3]))
    return "; ".join(parts) or "no word seen often enough to describe"


def _extreme(tagged: pd.DataFrame, largest: bool) -> pd.DataFrame:
    """Per unit the tag with the largest (or smallest) z."""
    ok = tagged.dropna(subset=["z"])
    idx = ok.groupby("unit")["z"].idxmax() if largest else ok.groupby("unit")["z"].idxmin()
    return ok.loc[idx.to_numpy(), ["unit", "tag", "z"]].set_index("unit")


def unit_frames(model_id: str, layer: int, state: str, stats: ResponseStats, words: Sequence[str],
                pos: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``unit_summaries`` rows, ``unit_tags`` rows) of one (layer, state)."""
    H = stats.mean.shape[1]
    names = np.asarray(words, dtype=object)[stats.word_ids]
    s1, s2 = _sums(stats)
    mu_all, sd_all = _moments(np.float64(stats.n.sum()), s1.sum(0), s2.sum(0))
    often = stats.n >= WORD_MIN_N
    k = min(WORDS, int(often.sum()))
    mean = stats.mean[often]                                                # [W', H]: words seen often enough
    top = np.argsort(-mean, axis=0, kind="stable")[:k]                      # [k, H], highest first
    bottom = np.argsort(mean, axis=0, kind="stable")[:k]
    named = names[often]
    top_words = [list(named[top[:, u]]) for u in range(H)]
    bottom_words = [list(named[bottom[:, u]]) for u in range(H)]
    tags = np.array([pos.get(str(w)) or "" for w in names], dtype=object)
    tagged = _tags(stats, tags)
    hi, lo = (_extreme(tagged, True), _extreme(tagged, False)) if len(tagged) else (None, None)

    def pick(table, u):
        if table is None or u not in table.index:
            return None, np.nan
        return str(table.at[u, "tag"]), float(table.at[u, "z"])
    rows = []
    for u in range(H):
        (tt, tz), (bt, bz) = pick(hi, u), pick(lo, u)
        rows.append({"unit": u, "n": int(stats.n.sum()), "mean": mu_all[u], "std": sd_all[u],
                     "top_words": ", ".join(top_words[u]), "bottom_words": ", ".join(bottom_words[u]),
                     "top_tag": tt, "top_tag_z": tz, "bottom_tag": bt, "bottom_tag_z": bz,
                     "description": describe(tt, tz, bt, bz, top_words[u], bottom_words[u])})
    summary = pd.DataFrame(rows)
    for frame in (summary, tagged):
        frame.insert(0, "state", state)
        frame.insert(0, "layer", np.int32(layer))
        frame.insert(0, "model_id", model_id)
    return summary, tagged
