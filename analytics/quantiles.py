"""Quantiles of the word responses: which occurrences are sampled, and the exact segmented sort.

Sampling.  The accumulator (:class:`analytics.responses.ResponseAccumulator`)
keeps at most about ``cap`` occurrences of each word for its quantiles.  Which
ones is decided by a keep-mask:

- :func:`systematic_keep`, used by the analysis pipeline, which knows the
  whole text in advance: occurrences are ranked in *text order* (a language
  model's split as one stream; a classifier's documents in their order, then
  by position), and occurrence j (1-based) of a word seen c times is kept iff
  c <= cap or floor(j*cap/c) != floor((j-1)*cap/c), i.e. occurrences
  ceil(m*c/cap) for m = 1..cap: a systematic sample of exactly ``cap``
  occurrences, one per stretch of c/cap, spread evenly over the whole text
  whatever order the pieces are traced in;
- the default for callers that pass no mask (in ``ResponseAccumulator.update``):
  the first ``cap`` occurrences in update order.  A traced stream is not i.i.d., so such
  a prefix is a sketch biased toward wherever the updates start.

Either way the quantiles are exact (see below) when n <= cap, the case of
most words.

Computation.  :func:`segment_quantiles` computes the quantiles of every
(word, column) of a block at once with one exact integer sort per column,
bit-equal to ``numpy.quantile(..., method='linear')`` of the float16 values.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def systematic_keep(ids: np.ndarray, cap: int) -> np.ndarray:
    """[N] bool: keep-mask of a systematic sample of at most ``cap`` occurrences per word.

    ``ids`` [N] are the word ids in text order.  Occurrence j (1-based) of a
    word seen c times is kept iff c <= cap or floor(j*cap/c) != floor((j-1)*cap/c),
    so a frequent word keeps exactly ``cap`` occurrences, evenly spread.
    """
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(ids, kind="stable")                       # [N] text order inside each word
    counts = np.bincount(ids)                                     # [V']
    starts = np.cumsum(counts) - counts
    rank = np.empty(ids.size, dtype=np.int64)                     # [N] j - 1
    rank[order] = np.arange(ids.size) - starts[ids[order]]
    c = counts[ids]                                               # [N]
    return (c <= cap) | ((rank + 1) * cap // c != rank * cap // c)


def _half_to_ordered(x: np.ndarray) -> np.ndarray:
    """float16 -> int32 in [0, 2**16) with the same order (x finite)."""
    # IEEE-754 trick: for negative floats flip every bit but the sign, so the
    # signed-int order matches the float order; then shift to the unsigned range.
    i = x.view(np.int16).astype(np.int32)
    return (i ^ ((i >> 15) & 0x7FFF)) + 2**15


def _ordered_to_half(k: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_half_to_ordered` on the low 16 bits of ``k``."""
    i = ((k & 0xFFFF) - 2**15).astype(np.int16)
    return (i ^ ((i >> 15) & 0x7FFF)).view(np.float16)


def _sort_rows_inplace(a: np.ndarray) -> None:
    """Sort each row of a C-contiguous [b, R] array in place.

    numpy's in-place SIMD sort needs no index array and measured faster than
    torch.sort here; it releases the GIL, so the rows are split over as many
    threads as torch is configured to use (torch.get_num_threads()).
    """
    workers = max(1, min(torch.get_num_threads(), a.shape[0]))
    if workers == 1:
        a.sort(axis=1)
        return
    bounds = np.linspace(0, a.shape[0], workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: a[bounds[i]:bounds[i + 1]].sort(axis=1), range(workers)))


def segment_quantiles(
    block: np.ndarray,
    group: np.ndarray,
    seg_start: np.ndarray,
    seg_len: np.ndarray,
    qs: Sequence[float],
) -> np.ndarray:
    """Quantiles of every (word segment, column) at once.

    Args:
        block: [R, b] float16 kept values, rows in any order.
        group: [R] int64 word index of each row (0..W-1).
        seg_start: [W] start of each word's segment in word-sorted order.
        seg_len: [W] rows per word (>= 1).
        qs: quantile levels.

    Returns:
        [len(qs), W, b] float32, bit-equal to ``np.quantile(x, qs, axis=0)``
        (method 'linear', cast to float32) of each word's rows as float32.
    """
    # One exact sort per column sorts every word's segment at once: the key is
    # (word index << 16) | order-preserving bits of the float16 value, an
    # int32 while there are fewer than 2**15 words (numpy sorts those ~2x
    # faster than int64), else an int64.  (An exact integer key rather than a
    # float "group + normalised value" key: no precision loss however close
    # the values are.)
    key_type = np.int32 if len(seg_len) < 2**15 else np.int64
    keys = _half_to_ordered(np.ascontiguousarray(block.T, dtype=np.float16)).astype(key_type, copy=False)  # [b, R]
    keys |= (group.astype(key_type) << 16)[None, :]
    _sort_rows_inplace(keys)

    # numpy's 'linear' rule, replicated operation by operation so the result is
    # bit-identical: virtual index (n - 1) * q, neighbours floor / floor + 1
    # clamped to the segment, float32 difference, lerp in float64 with the
    # b - diff * (1 - t) branch for t >= 0.5.
    q = np.asarray(qs, dtype=np.float64)[:, None]  # [Q, 1]
    virtual = (seg_len - 1)[None, :] * q  # [Q, W] float64
    lo = np.floor(virtual)
    gamma = (virtual - lo).reshape(-1)  # [Q*W]
    last = (seg_len - 1)[None, :]
    prev = np.clip(lo, 0, last).astype(np.int64)
    nxt = np.where(virtual >= last, last, np.clip(lo + 1, 0, last)).astype(np.int64)
    a = _ordered_to_half(np.take(keys, (seg_start + prev).reshape(-1), axis=1)).astype(np.float32)  # [b, Q*W]
    b = _ordered_to_half(np.take(keys, (seg_start + nxt).reshape(-1), axis=1)).astype(np.float32)
    del keys
    diff = (b - a).astype(np.float64)  # float32 subtraction, as numpy does
    upper = gamma >= 0.5
    res = a.astype(np.float64)
    res += diff * gamma
    res[:, upper] = b[:, upper] - diff[:, upper] * (1.0 - gamma[upper])
    n_q, n_w = virtual.shape
    return res.astype(np.float32).reshape(-1, n_q, n_w).transpose(1, 2, 0)  # [Q, W, b]
