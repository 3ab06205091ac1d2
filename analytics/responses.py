"""Streaming, vectorised per-word response statistics.

The caller streams chunks of ``(word_ids [N], values [N, W])``: W columns,
usually several (layer, state)s of ``H`` units side by side (Δh_t for the h/c
states, raw activations for gates; the caller decides).  For every word id
seen and every column we keep

- ``n``: the number of occurrences (exact),
- ``mean`` and ``std``: exact over *all* occurrences. ``std`` is the *sample*
  standard deviation (ddof=1, ``numpy.std(x, ddof=1)``), and 0 when n == 1.
  Each (word, column) keeps a shift K, the value at the word's first
  occurrence, and float64 sums of x − K and (x − K)²; then
  mean = K + Σ(x − K)/n and M2 = Σ(x − K)² − (Σ(x − K))²/n.  With the shift
  the float64 sums lose nothing to cancellation even for a tiny spread on a
  large offset, and the update is three vectorised passes
  (``index_select``, ``sub``, ``index_add_``) over blocks small enough to stay
  in cache, with no per-chunk merge of running moments.
- the quantiles ``QUANTILES`` (q10, q25, q50, q75, q90), numpy's default
  ``method='linear'``, computed from a sample buffer of at most about
  ``quantile_cap`` occurrences of each word, stored as float16: the quantiles
  are those of the values rounded to 11 significant bits, the precision the
  store keeps them at anyway (values beyond ±65,504 are clamped there).  Which
  occurrences are kept is the caller's ``keep`` mask (the pipeline passes a
  systematic sample spread evenly over the text, see
  :func:`analytics.quantiles.systematic_keep`), or by default the first
  ``quantile_cap`` in update order.  They are exact in that sense when
  n <= quantile_cap (most words); for more frequent words they are the
  quantiles of the sample (the documented sketch).

Memory stays bounded: the sums are float64 [V, W] arrays (only rows of words
seen are touched); kept rows go to a float16 buffer spilled to disk past
``spill_bytes`` (:mod:`analytics.kept_rows`), removed afterwards, also when
that fails.

Rows traced from a wrong state can be corrected (the exact language-model
trace, :mod:`analytics.lm_trace`, does): :meth:`ResponseAccumulator.retract`
takes them out of n, mean and std, and update() with the same text
``positions`` adds the right ones and replaces them in the quantile sample.

The quantiles are computed for
all words and a block of columns at once, with one exact segmented sort per
block (see :func:`analytics.quantiles.segment_quantiles`).

This module never changes ``torch.set_num_threads``.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from models.buffers import lazy_zeros, populated_empty

from .kept_rows import BLOCK_COLS, KeptRows
from .moments import F16_MAX, accumulate_split
from .quantiles import segment_quantiles
from .response_stats import QUANTILE_COLUMNS, QUANTILES, ResponseStats, response_matrix, z_scores

__all__ = ["BLOCK_COLS", "QUANTILES", "QUANTILE_COLUMNS", "ResponseAccumulator", "ResponseStats", "response_matrix",
           "z_scores"]

logger = logging.getLogger(__name__)


def _default_spill_bytes() -> int:
    """A quarter of physical memory, at most 8 GiB: writing to disk is slow here (~0.2-0.5 GB/s)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 4 << 30
    return int(min(8 << 30, max(256 << 20, ram // 4)))


#: Spill the kept-row buffer to disk once it holds more than this many bytes.
SPILL_BYTES = _default_spill_bytes()
#: Rough bound on the temporaries of one quantile block (loaded and
#: transposed values, int32 temporaries, int64 sort keys: ~32 bytes per element).
SORT_BUDGET_BYTES = 256 * 2**20


class ResponseAccumulator:
    """Accumulates per-word response statistics over a stream of chunks.

    Args:
        vocab_size: V; word ids must lie in [0, V).
        width: W, the number of value columns (e.g. several states x H units).
        quantile_cap: occurrences per word kept for the quantiles when
            :meth:`update` gets no ``keep`` mask (the first ones in update order).
        spill_dir: where the private temporary spill directory is created
            (``tempfile.mkdtemp`` default location when None). Created only if
            the buffer actually spills.
        spill_bytes: buffer size that triggers a spill (tests use a tiny one).
        device: where the counts and sums live and are updated (the traced
            model's device: chunks are not copied to the host); only the
            finished tables and the float16 rows kept for the quantiles move
            to the CPU.
    """

    def __init__(
        self,
        vocab_size: int,
        width: int,
        *,
        quantile_cap: int = 1000,
        spill_dir: str | os.PathLike | None = None,
        spill_bytes: int = SPILL_BYTES,
        device: torch.device | str = "cpu",
    ) -> None:
        if vocab_size < 1 or width < 1:
            raise ValueError(f"vocab_size and width must be >= 1, got {vocab_size}, {width}")
        if quantile_cap < 1:
            raise ValueError(f"quantile_cap must be >= 1, got {quantile_cap}")
        self.vocab_size = int(vocab_size)
        self.width = int(width)
        self.quantile_cap = int(quantile_cap)
        self.spill_bytes = int(spill_bytes)
        self._spill_parent = None if spill_dir is None else os.fspath(spill_dir)

        V, W = self.vocab_size, self.width
        self.device = dev = torch.device(device)
        self._count = torch.zeros(V, dtype=torch.int64, device=dev)        # [V]
        # On the CPU only the rows of words seen are ever touched, and only they take memory.
        zeros = lazy_zeros if dev.type == "cpu" else (lambda shape, dtype: torch.zeros(shape, dtype=dtype, device=dev))
        self._shift = zeros((V, W), torch.float32)                         # [V, W] K: first value
        self._s1 = zeros((V, W), torch.float64)                            # [V, W] Σ(x − K)
        self._s2 = zeros((V, W), torch.float64)                            # [V, W] Σ(x − K)²
        self._scratch: dict = {}

        self._rows = KeptRows(W, self.spill_bytes, self._spill_parent)      # the quantile sample
        self.clamped = 0
        self._finalized = False

    @property
    def hidden_size(self) -> int:  # the name of W before columns of several states were packed
        return self.width

    # ------------------------------------------------------------------ update
    def _check(self, word_ids, values, keep=None, positions=None) -> tuple[torch.Tensor, ...]:
        """(word_ids, values, keep, positions) as tensors, after the shape and type checks of update()."""
        if self._finalized:
            raise RuntimeError("ResponseAccumulator.update() called after finalize() or close()")
        word_ids, values = torch.as_tensor(word_ids), torch.as_tensor(values)
        if word_ids.dim() != 1 or word_ids.dtype.is_floating_point or word_ids.dtype == torch.bool:
            raise ValueError("word_ids must be a 1-D integer tensor, "
                             f"got shape {tuple(word_ids.shape)} {word_ids.dtype}")
        if values.dim() != 2 or values.shape[0] != word_ids.shape[0] or values.shape[1] != self.width:
            raise ValueError(
                f"values must have shape [N={word_ids.shape[0]}, W={self.width}], got {tuple(values.shape)}"
            )
        if keep is not None:
            keep = torch.as_tensor(keep)
            if keep.dtype != torch.bool or keep.shape != word_ids.shape:
                raise ValueError(f"keep must be a bool tensor of shape {tuple(word_ids.shape)}, "
                                 f"got {keep.dtype} {tuple(keep.shape)}")
        if positions is not None:
            positions = torch.as_tensor(positions).cpu()
            if positions.shape != word_ids.shape or positions.dtype.is_floating_point:
                raise ValueError(f"positions must be an integer tensor of shape {tuple(word_ids.shape)}")
        return word_ids, values, keep, positions

    def _device_rows(self, word_ids: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(ids int64, values float32 with unit column stride, clamp) on the tables' device, after the range and
        finiteness checks."""
        ids = word_ids.detach().to(self.device, torch.int64)
        vals = values.detach().to(self.device, torch.float32)
        if vals.stride(1) != 1 or vals.stride(0) < self.width:
            vals = vals.contiguous()
        lo, hi = torch.stack(torch.aminmax(ids)).tolist()                   # one host sync on a GPU
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"word ids must lie in [0, {self.vocab_size}), got range [{lo}, {hi}]")
        # A NaN or inf anywhere would poison its word's sums: refuse the chunk
        # before touching them.  aminmax is one pass without temporaries (NaN
        # propagates into it), where isfinite() would allocate a mask as big
        # as the chunk (20x slower here); it also tells whether float16 holds
        # every value.
        lo_v, hi_v = torch.stack(torch.aminmax(vals)).tolist()
        if not (np.isfinite(lo_v) and np.isfinite(hi_v)):
            raise ValueError("values contain NaN or inf; the traced model has probably diverged")
        return ids, vals, lo_v < -F16_MAX or hi_v > F16_MAX

    def update(self, word_ids: torch.Tensor, values: torch.Tensor, keep: torch.Tensor | None = None,
               positions: torch.Tensor | None = None) -> None:
        """Add one chunk: ``word_ids`` [N] integer, ``values`` [N, W] float.

        ``keep`` [N] bool: the rows that go into the quantile sample (e.g. a
        :func:`analytics.quantiles.systematic_keep` mask); None keeps each
        word's first ``quantile_cap`` occurrences in update order.  Means and
        stds always use every row.  ``positions`` [N]: each row's place in the
        text; a kept row replaces any row kept earlier at the same position
        (see :meth:`retract`).  Raises ValueError on bad shapes, ids outside
        [0, V) or non-finite values; the accumulator is then unchanged.
        """
        word_ids, values, keep, positions = self._check(word_ids, values, keep, positions)
        if word_ids.numel() == 0:
            return
        ids, vals, clamp = self._device_rows(word_ids, values)
        # The rows in word order (stable: text order within a word), so that each block of the update
        # adds into a run of neighbouring table rows, each word's row once in a row, instead of rows
        # scattered over the [V, W] tables: measured ~1.2x faster for the whole update.
        ids_s, perm = torch.sort(ids, stable=True)                          # [N], [N]
        uniq, cnt = torch.unique_consecutive(ids_s, return_counts=True)     # [U] ascending, [U]
        start = torch.cumsum(cnt, 0) - cnt                                 # [U] each word's first sorted row
        prev = self._count[uniq]                                           # [U] occurrences before
        new = prev == 0
        first = None                                                       # [N] sorted rows: a new word's first
        if bool(new.any()):  # its values become the word's shift K (so that its own x − K is 0)
            first = torch.zeros(ids.shape[0], dtype=torch.bool, device=self.device)
            first[start[new]] = True
        if keep is not None:
            keep = torch.nonzero(keep.to(self.device)[perm]).squeeze(1)    # [k] sorted rows, ascending
        elif bool((prev + cnt > self.quantile_cap).any()):                 # each word's first quantile_cap
            seen = torch.arange(ids.shape[0], device=self.device) - torch.repeat_interleave(start - prev, cnt)
            keep = torch.nonzero(seen < self.quantile_cap).squeeze(1)      # seen: the word's occurrences before
        n_keep = ids.shape[0] if keep is None else keep.shape[0]
        kept = (populated_empty((n_keep, self.width), torch.float16) if self.device.type == "cpu" else  # queued
                torch.empty((n_keep, self.width), dtype=torch.float16, device=self.device))
        accumulate_split(self._shift, self._s1, self._s2, ids_s, perm, vals, keep, kept, F16_MAX if clamp else None,
                         self._scratch, first=first)
        self._count[uniq] = prev + cnt
        if clamp:
            self.clamped += int(((vals < -F16_MAX) | (vals > F16_MAX)).sum())
        if n_keep:
            rows = perm.cpu() if keep is None else perm.cpu()[keep.cpu()]
            pos = np.full(n_keep, -1, np.int64) if positions is None else positions[rows].numpy().astype(np.int64)
            self._rows.add(ids_s if keep is None else ids_s[keep], kept, pos)

    def retract(self, word_ids: torch.Tensor, values: torch.Tensor) -> None:
        """Take rows added earlier out of n, mean and std (``values`` as they were added, to rounding).

        To correct rows traced from a wrong state: retract the old rows, then
        update() with the new ones at the same ``positions``, which also
        replaces their rows in the quantile sample.  The shift K stays (any K
        gives the same statistics).
        """
        word_ids, values, _, _ = self._check(word_ids, values)
        if word_ids.numel() == 0:
            return
        ids, vals, _ = self._device_rows(word_ids, values)
        d = (vals - self._shift[ids]).to(torch.float64)                    # as accumulate() adds them
        self._s1.index_add_(0, ids, d, alpha=-1)
        self._s2.index_add_(0, ids, d.square_(), alpha=-1)
        self._count.index_add_(0, ids, torch.ones_like(ids), alpha=-1)

    @property
    def spilled_rows(self) -> int:
        return self._rows.spilled_rows

    @property
    def n_spills(self) -> int:
        return self._rows.n_spills

    @property
    def _spill_path(self) -> str | None:
        return self._rows.spill_path

    def close(self) -> None:
        """Drop all buffers and remove the spill directory (idempotent)."""
        self._rows.close()
        self._count = self._shift = self._s1 = self._s2 = None  # type: ignore[assignment]
        self._scratch.clear()
        self._finalized = True

    def __enter__(self) -> ResponseAccumulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- finalize
    def finalize(self) -> ResponseStats:
        """The statistics of every column; then free every buffer (spill files included)."""
        if self._finalized:
            raise RuntimeError("ResponseAccumulator.finalize() called twice or after close()")
        try:
            return self.stats(0, self.width)
        finally:
            self.close()

    def stats(self, c0: int, c1: int) -> ResponseStats:
        """The statistics of columns c0 .. c1 (e.g. one state's units); may be called for several ranges."""
        if self._finalized:
            raise RuntimeError("ResponseAccumulator.stats() called after finalize() or close()")
        if not 0 <= c0 < c1 <= self.width:
            raise ValueError(f"need 0 <= c0 < c1 <= {self.width}, got {c0}, {c1}")
        word_ids, n, mean, std = self._moments(c0, c1)
        quantiles, n_kept = self._quantiles(word_ids, c0, c1)
        logger.info(
            "responses: %d words, columns %d-%d, %d occurrences, %d rows kept for quantiles (%d spilled)",
            len(word_ids), c0, c1, int(n.sum()), n_kept, self.spilled_rows,
        )
        if self.clamped:
            logger.warning("%d kept values beyond +-%g were clamped for the quantiles", self.clamped, F16_MAX)
        return ResponseStats(word_ids=word_ids, n=n, mean=mean, std=std, quantiles=quantiles)

    def _moments(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(word_ids, n, mean, std) of the words seen, columns c0 .. c1."""
        seen = torch.nonzero(self._count > 0).squeeze(1)  # [n_words], on the tables' device
        count = self._count[seen]
        # mean and std where the sums are; only the finished [n_words, width] tables move to the CPU.
        n64 = count.to(torch.float64)[:, None]
        s1 = self._s1[seen, c0:c1]
        mean = (self._shift[seen, c0:c1].to(torch.float64) + s1 / n64).to(torch.float32).cpu().numpy()
        m2 = self._s2[seen, c0:c1] - s1.square_() / n64
        del s1
        std = (m2 / (n64 - 1).clamp_(min=1.0)).clamp_(min=0.0).sqrt_().to(torch.float32).cpu().numpy()  # n == 1: 0
        return seen.cpu().numpy().astype(np.int64), count.cpu().numpy().astype(np.int64), mean, std

    def _quantiles(self, word_ids: np.ndarray, c0: int, c1: int) -> tuple[np.ndarray, int]:
        """([Q, n_words, c1 − c0] quantiles, NaN for words without a sample; the rows they come from)."""
        kept_ids, rows = self._rows.rows(word_ids)
        if rows is not None:
            kept_ids = kept_ids[rows]
        kept = np.bincount(kept_ids, minlength=self.vocab_size)[word_ids]  # [n_words] rows per word
        sampled = np.flatnonzero(kept)  # [S] words with a sample (all, unless a keep mask left some out)
        quantiles = np.full((len(QUANTILES), len(word_ids), c1 - c0), np.nan, dtype=np.float32)
        seg_len = kept[sampled]
        seg_start = np.cumsum(seg_len) - seg_len  # [S] segment starts after sorting by word
        n_kept = int(seg_len.sum())
        group = np.searchsorted(word_ids[sampled], kept_ids)  # [R] row -> sampled word index
        step = max(1, min(BLOCK_COLS, SORT_BUDGET_BYTES // (32 * max(n_kept, 1))))
        s0 = c0
        while n_kept and s0 < c1:
            s1 = min(s0 + step, c1, s0 - s0 % BLOCK_COLS + BLOCK_COLS)  # within one spill file
            block = self._rows.block(s0, s1)  # [R, b] float16
            if rows is not None:
                block = block[rows]
            quantiles[:, sampled, s0 - c0:s1 - c0] = segment_quantiles(block, group, seg_start, seg_len, QUANTILES)
            s0 = s1
        return quantiles, n_kept
