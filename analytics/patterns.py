"""LSTMVis-style pattern search over per-token states (pure numpy).

A *pattern* is a set of units U, a threshold θ and a span length L (from a
span of tokens the user selected). A unit is *on* at step t when its state is
at least θ. A span [s, e) of the text, of length l = e − s within L ± tolerance,
*matches* unit u when u is on at every step of the span and off right after it
(at e, or the text or document ends there): u was on for exactly those l steps,
or longer when it switched on earlier. With ``off_before`` the unit must also be
off right before the span (at s − 1, or the span starts the text or a
document): it switched on exactly at s, as LSTMVis's "off before" option.

The *score* of a span is the number of units of U it matches. For every end
e the search keeps the length with the highest score (ties: the length
closest to L) and returns the spans scoring at least ``min_units`` (default
all of U), best first: partial matches rank below full ones.

Spans never cross a document boundary. Everything is vectorised over the
[N, |U|] slice of states: a few passes of O(N·|U|), so 10 units over 100k
tokens take a few milliseconds (``bench/bench_patterns.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Matches:
    """Spans found by :func:`search`, best first.

    ``start``/``stop`` [M] (stop exclusive), ``score`` [M] (units matched), ``matched`` [M, |U|] bool (which).
    ``total`` counts every span found, when ``limit`` kept only the best.
    """

    start: np.ndarray
    stop: np.ndarray
    score: np.ndarray
    matched: np.ndarray
    units: tuple[int, ...]
    total: int

    def __len__(self) -> int:
        return len(self.start)

    def frame(self) -> pd.DataFrame:
        """One row per match: start, stop, length, score, units (the matching unit ids)."""
        units = np.asarray(self.units)
        return pd.DataFrame({"start": self.start, "stop": self.stop, "length": self.stop - self.start,
                             "score": self.score, "units": [units[m].tolist() for m in self.matched]})


def _breaks(n: int, documents: np.ndarray | None) -> np.ndarray:
    """[n] bool: True where a document starts (position 0 included)."""
    first = np.zeros(n, bool)
    if n:
        first[0] = True
    if documents is not None and n > 1:
        documents = np.asarray(documents)
        first[1:] = documents[1:] != documents[:-1]
    return first


def on_runs(on: np.ndarray, documents: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For on [N, k] bool: (run [N, k], ends [N, k]).

    run[t, u]: consecutive on-steps of u ending at t (0 when off), restarting at every document;
    ends[t, u]: u is on at t and off at t + 1 (or t is the last step of the text or of its document).
    """
    n = on.shape[0]
    idx = np.arange(n, dtype=np.int64)[:, None]
    first = _breaks(n, documents)
    # the last step before t where u was off (a document start counts as off just before it)
    off_at = np.maximum(np.where(~on, idx, -1), np.where(first, np.arange(n) - 1, -1)[:, None])
    last_off = np.maximum.accumulate(off_at, axis=0)
    run = (idx - last_off).astype(np.int32)
    run[~on] = 0
    off_next = np.ones_like(on)
    off_next[:-1] = ~on[1:]
    off_next[:-1] |= first[1:, None]
    return run, on & off_next


def lengths_to_try(length: int, tolerance: int = 1) -> list[int]:
    """L, L − 1, L + 1, ... (closest to L first; at least 1)."""
    out = [length]
    for d in range(1, tolerance + 1):
        out += [length - d, length + d]
    return [x for x in out if x >= 1]


def search(series: np.ndarray, threshold: float, length: int, *, units: Sequence[int] | None = None,
           tolerance: int = 1, off_before: bool = False, min_units: int | None = None,
           documents: np.ndarray | None = None, limit: int | None = None) -> Matches:
    """Spans of the text where the units of ``series`` [N, k] (values, NaN = unknown) are on as a pattern.

    See the module docstring. ``units`` names the k columns (default 0..k-1); ``limit`` keeps the best.
    """
    series = np.asarray(series)
    n, k = series.shape
    units = tuple(range(k)) if units is None else tuple(int(u) for u in units)
    if length < 1:
        raise ValueError(f"the span length must be at least 1, got {length}")
    need = k if min_units is None else max(1, min(int(min_units), k))
    empty = Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, k), bool),
                    units, 0)
    if n == 0 or k == 0:
        return empty
    with np.errstate(invalid="ignore"):
        on = series >= threshold                                    # NaN: off
    run, ends = on_runs(on, documents)
    tries = lengths_to_try(length, tolerance)
    best_score = np.zeros(n, np.int32)
    best_len = np.zeros(n, np.int32)
    for lng in tries:                                               # closest to L first: ties keep it
        fire = ends & ((run == lng) if off_before else (run >= lng))   # [N, k]
        score = fire.sum(axis=1, dtype=np.int32)
        better = score > best_score
        best_score[better] = score[better]
        best_len[better] = lng
    last = np.flatnonzero(best_score >= need)                       # t = e − 1 of each match
    if last.size == 0:
        return empty
    start = last - best_len[last] + 1
    score = best_score[last]
    order = np.lexsort((start, -score))                             # best score first, then text order
    total = len(order)
    if limit is not None:
        order = order[:limit]
    last, start, score = last[order], start[order], score[order]
    lng = (last - start + 1)[:, None]
    matched = ends[last] & ((run[last] == lng) if off_before else (run[last] >= lng))
    return Matches(start.astype(np.int64), (last + 1).astype(np.int64), score, matched, units, total)


def propose_units(values: np.ndarray, start: int, stop: int, threshold: float, *,
                  off_before: bool = False, limit: int | None = None) -> list[int]:
    """Units on (≥ θ) at every step of [start, stop) of ``values`` [T, H], strongest (highest minimum) first.

    With ``off_before``, only units off at start − 1 (when there is such a step).
    """
    if not 0 <= start < stop <= len(values):
        raise ValueError(f"span {start}..{stop} is outside the {len(values)} tokens")
    lows = np.nanmin(values[start:stop], axis=0) if stop > start else np.zeros(values.shape[1])
    ok = lows >= threshold
    if off_before and start > 0:
        ok &= ~(values[start - 1] >= threshold)
    units = np.flatnonzero(ok)
    units = units[np.argsort(-lows[units], kind="stable")]
    return [int(u) for u in (units if limit is None else units[:limit])]


def position_summary(matches: Matches, words: Sequence[str] | np.ndarray, tags: Sequence[str] | np.ndarray | None,
                     *, before: int = 1, top: int = 5) -> pd.DataFrame:
    """Most common words and POS tags at each position of the matches, aligned at their starts.

    Rows: offset (−before .. longest match − 1; negative = before the span), kind ('word' or 'pos'),
    item, count, share (of the matches that reach that offset); the ``top`` items per offset and kind.
    """
    cols = ["offset", "kind", "item", "count", "share"]
    if len(matches) == 0:
        return pd.DataFrame(columns=cols)
    words = np.asarray(words, dtype=object)
    tags = None if tags is None else np.asarray(tags, dtype=object)
    width = int((matches.stop - matches.start).max())
    offsets = np.arange(-before, width)
    pos = matches.start[:, None] + offsets[None, :]                 # [M, W]
    valid = (pos >= 0) & (pos < len(words)) & (offsets[None, :] < (matches.stop - matches.start)[:, None])
    m_idx, o_idx = np.nonzero(valid)
    frame = pd.DataFrame({"offset": offsets[o_idx], "word": words[pos[m_idx, o_idx]]})
    if tags is not None:
        frame["pos"] = tags[pos[m_idx, o_idx]]
    reach = frame.groupby("offset").size()
    parts = []
    for kind in ("word", "pos") if tags is not None else ("word",):
        counts = frame.fillna({kind: "?"}).groupby(["offset", kind]).size().rename("count").reset_index()
        counts = counts.sort_values(["offset", "count", kind], ascending=[True, False, True])
        counts = counts.groupby("offset").head(top).rename(columns={kind: "item"})
        counts.insert(1, "kind", kind)
        parts.append(counts)
    out = pd.concat(parts, ignore_index=True)
    out["share"] = out["count"] / out["offset"].map(reach)
    return out.sort_values(["offset", "kind", "count"], ascending=[True, False, False], ignore_index=True)[cols]
