"""The hot loop of the response statistics: shifted per-word sums of one chunk, on the tables' device.

For every row r (word w = ids[r]) and column j:  s1[w, j] += x − K[w, j]  and
s2[w, j] += (x − K[w, j])², in float64 (see :mod:`analytics.responses` for
why the shift K), and the kept rows are copied to float16 for the quantiles.

On a CPU the rows go in blocks small enough that the scratch stays in cache
between the passes (measured 1.4-1.7x faster than whole chunks).  With more
than one torch thread the *columns* are split over that many Python threads,
each running its passes on one intra-op thread (:func:`models.runtime.run_split`):
torch's own parallelism over such blocks is one OpenMP barrier per small op,
and on this shared 2-core machine the update measured 4x *slower* at 2
threads than at 1 (1.2 s vs 5.0 s for two 16k x 2,400 chunks).  On a GPU the chunk goes in a few large blocks.
"""
from __future__ import annotations

import torch

from models.runtime import run_split, split_parts

#: CPU: update() works on row blocks of about this many elements, so that its
#: float64 scratch (2 MiB) stays in cache.
BLOCK_ELEMS = 2**18
#: GPU: rows per block bounded by this many elements (the float64 scratch: 128 MiB).
DEVICE_BLOCK_ELEMS = 2**24
#: Columns narrower than this are not worth a thread of their own.
MIN_THREAD_COLS = 64


def _scratch(store: dict, key: tuple[int, str], shape: tuple[int, int], dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
    """A reusable buffer per (worker, name): fresh pages cost as much as the arithmetic here."""
    n = shape[0] * shape[1]
    buf = store.get(key)
    if buf is None or buf.numel() < n or buf.dtype != dtype:
        buf = store[key] = torch.empty(n, dtype=dtype, device=device)
    return buf[:n].view(shape)


def accumulate(shift: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, ids: torch.Tensor, vals: torch.Tensor,
               keep: torch.Tensor | None, kept: torch.Tensor, clamp: float | None, scratch: dict,
               block_elems: int | None = None) -> None:
    """Add one chunk to the sums.

    shift [V, W] float32, s1, s2 [V, W] float64: the tables (on one device);
    ids [N] int64 and vals [N, W] float32 on that device; keep: ascending row
    indices of the rows kept for the quantiles (None: all); kept [k, W]
    float16 receives them (on the same device); clamp: the float16 limit when some
    value lies beyond it.
    """
    W = vals.shape[1]
    if vals.device.type != "cpu":
        _columns(shift, s1, s2, ids, vals, keep, kept, clamp, scratch, 0, 0, W, block_elems or DEVICE_BLOCK_ELEMS)
        return
    block_elems = block_elems or BLOCK_ELEMS
    threads = split_parts(W // MIN_THREAD_COLS)
    bounds = [W * i // threads for i in range(threads + 1)]
    run_split(lambda i: _columns(shift, s1, s2, ids, vals, keep, kept, clamp, scratch, i, bounds[i], bounds[i + 1],
                                 block_elems), threads)


def _columns(shift, s1, s2, ids, vals, keep, kept, clamp, scratch, worker: int, c0: int, c1: int,
             block_elems: int) -> None:
    """Columns c0 .. c1 of :func:`accumulate`: gather K, x − K, widen to float64, two index_add_,
    and the float16 copy of the kept rows, block by block."""
    n_rows, width = vals.shape[0], c1 - c0
    shift, s1, s2, vals = shift[:, c0:c1], s1[:, c0:c1], s2[:, c0:c1], vals[:, c0:c1]
    rows = max(1, block_elems // width)
    dev = vals.device
    starts = list(range(0, n_rows, rows))
    stops = starts[1:] + [n_rows]
    # The kept rows of each block: one search (and one host sync) for all blocks.
    ends = stops if keep is None else torch.searchsorted(keep, torch.tensor(stops, device=dev)).tolist()
    k0 = 0
    for start, stop, k1 in zip(starts, stops, ends):
        i, v = ids[start:stop], vals[start:stop]
        a = _scratch(scratch, (worker, "shift"), (stop - start, width), torch.float32, dev)
        a64 = _scratch(scratch, (worker, "dev64"), (stop - start, width), torch.float64, dev)
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
            kept[k0:k1, c0:c1].copy_(src)
        k0 = k1
