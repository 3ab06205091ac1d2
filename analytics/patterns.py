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
    """For on [k, N] bool (one row per unit): (run [k, N] int32, ends [k, N] bool).

    run[u, t]: consecutive on-steps of u ending at t (0 when off), restarting at every document;
    ends[u, t]: u is on at t and off at t + 1 (or t is the last step of the text or of its document).
    """
    n = on.shape[1]
    idx = np.arange(n, dtype=np.int32)
    first = _breaks(n, documents)
    # the last step at or before t where u was off (a document start counts as off just before it)
    off_at = np.where(on, np.where(first, idx - 1, -1).astype(np.int32)[None, :], idx[None, :])
    run = idx[None, :] - np.maximum.accumulate(off_at, axis=1)
    off_next = np.ones_like(on)
    off_next[:, :-1] = ~on[:, 1:] | first[None, 1:]
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
        on = np.ascontiguousarray(series.T) >= threshold            # [k, N]; NaN: off
    run, ends = on_runs(on, documents)
    cand = np.flatnonzero(ends.any(axis=0))                         # steps where some unit's run ends
    run, ends = run[:, cand], ends[:, cand]                         # [k, C]
    best_score = np.zeros(len(cand), np.int32)
    best_len = np.zeros(len(cand), np.int32)
    for lng in lengths_to_try(length, tolerance):                   # closest to L first: ties keep it
        fire = ends & ((run == lng) if off_before else (run >= lng))
        score = fire.sum(axis=0, dtype=np.int32)
        better = score > best_score
        best_score[better] = score[better]
        best_len[better] = lng
    keep = np.flatnonzero(best_score >= need)
    if keep.size == 0:
        return empty
    score = best_score[keep]
    last = cand[keep]                                               # t = e − 1 of each match
    start = last - best_len[keep] + 1
    order = np.lexsort((start, -score))                             # best score first, then text order
    total = len(order)
    if limit is not None:
        order = order[:limit]
    keep, last, start, score = keep[order], last[order], start[order], score[order]
    lng = best_len[keep][None, :]
    matched = (ends[:, keep] & ((run[:, keep] == lng) if off_before else (run[:, keep] >= lng))).T
    return Matches(start.astype(np.int64), (last + 1).astype(np.int64), score, matched, units, total)


def propose_units(values: np.ndarray, start: int, stop: int, threshold: float, *,
                  off_before: bool = False, off_after: bool = False, limit: int | None = None) -> list[int]:
    """Units on (≥ θ) at every step of [start, stop) of ``values`` [T, H], strongest (highest minimum) first.

    With ``off_before``, only units off at start − 1, with ``off_after`` only units off at ``stop`` (when
    there is such a step): then the span itself is a full match of :func:`search` for the proposed units.
    """
    if not 0 <= start < stop <= len(values):
        raise ValueError(f"span {start}..{stop} is outside the {len(values)} tokens")
    lows = np.nanmin(values[start:stop], axis=0) if stop > start else np.zeros(values.shape[1])
    ok = lows >= threshold
    if off_before and start > 0:
        ok &= ~(values[start - 1] >= threshold)
    if off_after and stop < len(values):
        ok &= ~(values[stop] >= threshold)
    units = np.flatnonzero(ok)
    units = units[np.argsort(-lows[units], kind="stable")]
    return [int(u) for u in (units if limit is None else units[:limit])]


def position_summary(matches: Matches, word_ids: np.ndarray, words: Sequence[str] | np.ndarray,
                     tags: Sequence[str] | np.ndarray | None = None, *, before: int = 1, top: int = 5) -> pd.DataFrame:
    """Most common words and POS tags at each position of the matches, aligned at their starts.

    ``word_ids`` [N]: the text; ``words`` / ``tags``: the word and universal tag of each word id.
    Rows: offset (−before .. longest match − 1; negative = before the span), kind ('word' or 'pos'),
    item, count, share (of the matches that reach that offset); the ``top`` items per offset and kind.
    """
    cols = ["offset", "kind", "item", "count", "share"]
    if len(matches) == 0:
        return pd.DataFrame(columns=cols)
    word_ids = np.asarray(word_ids, dtype=np.int64)
    lengths = matches.stop - matches.start
    offsets = np.arange(-before, int(lengths.max()))
    pos = matches.start[:, None] + offsets[None, :]                 # [M, W]
    valid = (pos >= 0) & (pos < len(word_ids)) & (offsets[None, :] < lengths[:, None])
    o_idx = np.nonzero(valid)[1]
    ids = word_ids[pos[valid]]
    reach = np.bincount(o_idx, minlength=len(offsets))
    vocab = {"word": np.asarray(words, dtype=object)}
    if tags is not None:
        vocab["pos"] = np.asarray(pd.Series(tags, dtype=object).fillna("?"), dtype=object)
    parts = []
    for kind, names in vocab.items():
        items = ids if kind == "word" else pd.factorize(names)[0][ids]
        labels = names if kind == "word" else pd.factorize(names)[1]
        key = o_idx * (len(labels) + 1) + items
        uniq, count = np.unique(key, return_counts=True)
        frame = pd.DataFrame({"o": uniq // (len(labels) + 1), "i": uniq % (len(labels) + 1), "count": count})
        frame = frame.sort_values(["o", "count", "i"], ascending=[True, False, True]).groupby("o").head(top)
        parts.append(pd.DataFrame({"offset": offsets[frame["o"]], "kind": kind,
                                   "item": np.asarray(labels, dtype=object)[frame["i"]],
                                   "count": frame["count"].to_numpy(),
                                   "share": frame["count"].to_numpy() / reach[frame["o"]]}))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["offset", "kind", "count"], ascending=[True, False, False], ignore_index=True)[cols]
