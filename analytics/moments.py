"""The hot loop of the response statistics: shifted per-word sums of one chunk, on the tables' device.

For every row r (word w = ids[r]) and column j:  s1[w, j] += x − K[w, j]  and
s2[w, j] += (x − K[w, j])², in float64 (see :mod:`analytics.responses` for
why the shift K, which a word's first row sets), and the kept rows are copied
to float16 for the quantiles.

At more than one torch thread, :func:`accumulate_split` cuts the rows (sorted by word) into
one run per thread at a word boundary, so that the parts add into disjoint
table rows, and runs them side by side in Python threads, each at one
intra-op thread (:func:`models.runtime.run_split`): ``index_add_`` itself does
not use torch's threads.  (Splitting the *columns* that way measured 2x slower
than torch's threads.)  On a GPU the chunk goes in a few large blocks (torch's
path; on a CPU that path is the reference a test compares the loop with, on
row blocks small enough that its scratch stays in cache).

On a CPU the per-value work is one compiled loop (:func:`_add_rows`, numba):
each sorted row is read once, its word's float32 shift subtracted, the
difference widened to float64 and added to both sums, and a kept row written
straight into the float16 sample; a word's first row sets its shift.  Torch's
ops made that nine passes over the block (gather the rows, gather K, subtract,
widen, two ``index_add_``, square, the float16 copy, and the shift of new
words before them).  The float64 additions are the same, in the same order, as
``index_add_``'s, and the float16 conversion is the hardware's (LLVM's
``fptrunc``, one ``vcvtps2ph`` on x86): sums and sample are bit-identical to
the torch path, which the GPU keeps (a test compares the two).
"""
from __future__ import annotations

import numpy as np
import torch

try:
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic
except ImportError:  # a bare GPU machine (bench/gpu_check.sh) may lack it: torch's path then serves the CPU too
    numba = None

from models.runtime import run_split, split_parts

#: CPU, torch's path: row blocks of about this many elements, so that the float64 scratch (2 MiB) stays in cache.
BLOCK_ELEMS = 2**18
#: CPU: rows per part below which accumulate_split does not split.
MIN_SPLIT_ROWS = 1024
#: GPU: rows per block bounded by this many elements (the float64 scratch: 128 MiB).
DEVICE_BLOCK_ELEMS = 2**24


def _scratch(store: dict, key: str, shape: tuple[int, int], dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
    """A reusable buffer per name: fresh pages cost as much as the arithmetic here."""
    n = shape[0] * shape[1]
    buf = store.get(key)
    if buf is None or buf.numel() < n or buf.dtype != dtype:
        buf = store[key] = torch.empty(n, dtype=dtype, device=device)
    return buf[:n].view(shape)


def _compiled(fn):
    """numba's compiled ``fn``, cached on disk when its folder is writable (else compiled once per process,
    ~2 s: numba refuses to cache a read-only install); None without numba."""
    if numba is None:
        return None
    try:
        return numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")(fn)
    except RuntimeError:
        return numba.njit(nogil=True, boundscheck=False, error_model="numpy")(fn)


#: Largest finite float16: kept values beyond it are clamped to it.
F16_MAX = 65504.0


def _half_bits_intrinsic():
    """A numba intrinsic: the float16 bits (uint16) of a float32, rounded to nearest even (LLVM's ``fptrunc``
    to half, the hardware's conversion; numba has no float16 type).  None without numba."""
    if numba is None:
        return None

    @intrinsic
    def half_bits(typingctx, x):
        if x != types.float32:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))
        return types.uint16(types.float32), codegen
    return half_bits


_half_bits = _half_bits_intrinsic()


@_compiled
def _add_rows(vals, perm, ids, shift, s1, s2, keep, keep_all, first, out):  # pragma: no cover (compiled)
    """For each sorted row r (word w = ids[r], values vals[perm[r]]): s1[w] += x − K[w], s2[w] += (x − K[w])²,
    with x − K in float32 widened to float64 (as the torch path does); rows with keep_all or keep[r] are
    written, in order, to out [k, W] as float16 bits (uint16), clamped to ±F16_MAX.  Returns k.  nogil: the
    parts of accumulate_split run side by side.  The words' table rows stay in cache while the rows of one
    word (sorted together) go by.

    Rows with first[r] are their word's first occurrence: their values become the shift K, x − K is +0.0,
    and adding it would change nothing, so the sums' pages of a word seen once are never touched (never
    faulted in: ~1 ns a byte here, as much as the arithmetic)."""
    k = 0
    width = vals.shape[1]
    lo, hi = np.float32(-F16_MAX), np.float32(F16_MAX)
    for r in range(ids.shape[0]):
        w = ids[r]
        x, kw = vals[perm[r]], shift[w]
        kept = keep_all or keep[r]
        if first[r]:
            kw[:] = x
            if kept:
                o = out[k]
                k += 1
                for j in range(width):
                    o[j] = _half_bits(min(max(x[j], lo), hi))
        elif kept:
            o, a, b = out[k], s1[w], s2[w]
            k += 1
            for j in range(width):
                v = x[j]
                o[j] = _half_bits(min(max(v, lo), hi))
                d = np.float64(v - kw[j])
                a[j] += d
                b[j] += d * d
        else:
            a, b = s1[w], s2[w]
            for j in range(width):
                d = np.float64(x[j] - kw[j])
                a[j] += d
                b[j] += d * d
    return k


#: Whether the CPU's statistics run the compiled loop (numba importable) rather than torch's path.
CPU_LOOP = _add_rows is not None


def _accumulate_cpu(shift: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, ids: torch.Tensor, perm: torch.Tensor,
                    vals: torch.Tensor, keep: torch.Tensor | None, kept: torch.Tensor,
                    first: torch.Tensor | None) -> None:
    """:func:`accumulate` on a CPU: one call of :func:`_add_rows`, which writes the kept rows into ``kept``."""
    n_rows = ids.shape[0]
    mask = np.zeros(n_rows if keep is not None else 0, dtype=np.bool_)
    if keep is not None:
        mask[keep.numpy()] = True                                       # [n_rows] kept, in sorted order
    first_np = np.zeros(n_rows, np.bool_) if first is None else first.numpy()
    out = kept.view(torch.int16).numpy().view(np.uint16)                # the float16 sample's bits
    k = _add_rows(vals.numpy(), perm.numpy(), ids.numpy(), shift.numpy(), s1.numpy(), s2.numpy(), mask,
                  keep is None, first_np, out)
    if k != kept.shape[0]:
        raise RuntimeError(f"the statistics loop kept {k} rows, expected {kept.shape[0]}")


def accumulate(shift: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, ids: torch.Tensor, perm: torch.Tensor,
               vals: torch.Tensor, keep: torch.Tensor | None, kept: torch.Tensor, clamp: float | None, scratch: dict,
               block_elems: int | None = None, cpu_loop: bool = True, first: torch.Tensor | None = None) -> None:
    """Add one chunk to the sums, its rows taken in the order ``perm``.

    shift [V, W] float32, s1, s2 [V, W] float64: the tables (on one device);
    vals [N, W] float32 on that device; perm [N]: the order in which its rows
    are added (the caller sorts them by word); ids [N] int64: the word of
    each row in that order (ids[r] belongs to vals[perm[r]]); keep: ascending
    positions in that order of the rows kept for the quantiles (None: all);
    kept [k, W] float16 receives them, in that order; clamp: the float16
    limit when some value lies beyond it (the compiled loop always clamps
    there); first [N] bool (optional): the rows, in that order, that are
    their word's first occurrence, whose values become the word's shift K
    (x − K = 0, see :func:`_add_rows`).  ``cpu_loop=False`` takes torch's
    path on a CPU too (the reference a test compares the loop with).
    """
    n_rows, width = ids.shape[0], vals.shape[1]
    dev = vals.device
    if dev.type == "cpu" and cpu_loop and CPU_LOOP:
        _accumulate_cpu(shift, s1, s2, ids, perm, vals, keep, kept, first)
        return
    if first is not None:                                               # the shift of new words
        new = torch.nonzero(first).squeeze(1)
        shift[ids[new]] = vals[perm[new]]
    block_elems = block_elems or (BLOCK_ELEMS if dev.type == "cpu" else DEVICE_BLOCK_ELEMS)
    rows = max(1, block_elems // width)
    # Block by block of rows: gather the rows and K, x − K, widen to float64, two index_add_, and
    # the float16 copy of the kept rows.
    starts = list(range(0, n_rows, rows))
    stops = starts[1:] + [n_rows]
    # The kept rows of each block: one search (and one host sync) for all blocks.
    ends = stops if keep is None else torch.searchsorted(keep, torch.tensor(stops, device=dev)).tolist()
    k0 = 0
    for start, stop, k1 in zip(starts, stops, ends):
        i = ids[start:stop]
        v = torch.index_select(vals, 0, perm[start:stop],
                               out=_scratch(scratch, "rows", (stop - start, width), torch.float32, dev))
        a = _scratch(scratch, "shift", (stop - start, width), torch.float32, dev)
        a64 = _scratch(scratch, "dev64", (stop - start, width), torch.float64, dev)
        torch.index_select(shift, 0, i, out=a)
        torch.sub(v, a, out=a)                                          # x − K, then widened: 1.3x
        a64.copy_(a)                                                    # faster than a mixed-dtype sub
        s1.index_add_(0, i, a64)
        a64.square_()
        s2.index_add_(0, i, a64)
        if k1 > k0:
            src = v if keep is None else v.index_select(0, keep[k0:k1] - start)
            if clamp is not None:
                src = src.clamp(-clamp, clamp)
            kept[k0:k1].copy_(src)
        k0 = k1


def accumulate_split(shift: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, ids: torch.Tensor, perm: torch.Tensor,
                     vals: torch.Tensor, keep: torch.Tensor | None, kept: torch.Tensor, clamp: float | None,
                     scratch: dict, first: torch.Tensor | None = None) -> None:
    """:func:`accumulate`, on a CPU with several torch threads cut into one part per thread (the same sums:
    each word's rows stay in one part, in the same order)."""
    n_rows = ids.shape[0]
    parts = split_parts(n_rows // MIN_SPLIT_ROWS) if vals.device.type == "cpu" else 1
    if parts <= 1:
        accumulate(shift, s1, s2, ids, perm, vals, keep, kept, clamp, scratch, first=first)
        return
    # Part boundaries: the first row of the word at each even cut (a word's rows stay together).
    cuts = torch.searchsorted(ids, ids[[n_rows * i // parts for i in range(1, parts)]])
    bounds = [0, *sorted(set(cuts.tolist()) - {0}), n_rows]
    kbounds = bounds if keep is None else torch.searchsorted(keep, torch.tensor(bounds)).tolist()

    def part(i: int) -> None:
        a, b, ka, kb = bounds[i], bounds[i + 1], kbounds[i], kbounds[i + 1]
        accumulate(shift, s1, s2, ids[a:b], perm[a:b], vals, None if keep is None else keep[ka:kb] - a,
                   kept[ka:kb], clamp, scratch.setdefault(f"part{i}", {}), first=None if first is None else first[a:b])

    run_split(part, len(bounds) - 1)
