"""The compiled CPU loop of the statistics (analytics.moments._add_rows) against torch's path and float64 sums."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analytics import moments

pytest.importorskip("numba")                                               # a declared dependency; bare GPU machines


def test_the_cpu_path_is_the_compiled_loop():
    assert moments.CPU_LOOP


def _chunk(seed: int, n_rows: int = 2000, vocab: int = 50, width: int = 37):
    """Zipf-like ids sorted by word (stable), values on word-dependent offsets, one value past float16."""
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.3, n_rows) - 1, vocab - 1)
    vals = (rng.standard_normal((n_rows, width)) * rng.uniform(1e-3, 3, width) + 10.0 * (ids[:, None] % 3))
    vals = vals.astype(np.float32)
    vals[7, 3] = 7e4
    ids_t = torch.from_numpy(ids)
    ids_s, perm = torch.sort(ids_t, stable=True)
    shift = torch.zeros(vocab, width)
    uniq, cnt = torch.unique_consecutive(ids_s, return_counts=True)
    start = torch.cumsum(cnt, 0) - cnt
    shift[uniq] = torch.from_numpy(vals)[perm[start]]                  # K: each word's first value (expected)
    first = torch.zeros(n_rows, dtype=torch.bool)
    first[start] = True
    return ids_s, perm, torch.from_numpy(vals), shift, first


@pytest.mark.parametrize("keep_every", [None, 3])
def test_loop_is_bit_identical_to_torch_path_and_matches_float64_sums(keep_every):
    ids, perm, vals, shift, first = _chunk(0)
    V, W = shift.shape
    keep = None if keep_every is None else torch.arange(0, len(ids), keep_every)
    n_keep = len(ids) if keep is None else len(keep)
    out = {}
    for loop in (True, False):
        s1, s2 = torch.zeros(V, W, dtype=torch.float64), torch.zeros(V, W, dtype=torch.float64)
        k = torch.zeros(V, W)                                           # the first rows set each word's K
        kept = torch.empty(n_keep, W, dtype=torch.float16)
        # torch's path in small blocks: kept rows crossing block ends
        moments.accumulate(k, s1, s2, ids, perm, vals, keep, kept, 65504.0, {}, block_elems=W * 61,
                           cpu_loop=loop, first=first)
        out[loop] = (s1, s2, kept, k)
    for a, b in zip(out[True], out[False]):
        assert torch.equal(a, b)
    assert torch.equal(out[True][3], shift)
    # float64 sums computed independently with numpy, of x − K rounded to float32 as documented (the
    # float32 difference is exact to its rounding; test_responses compares the statistics with float64 ones)
    x = (vals.numpy()[perm.numpy()] - shift.numpy()[ids.numpy()]).astype(np.float64)
    r1, r2 = np.zeros((V, W)), np.zeros((V, W))
    np.add.at(r1, ids.numpy(), x)
    np.add.at(r2, ids.numpy(), x * x)
    s1, s2, kept, _ = out[True]
    np.testing.assert_allclose(s1.numpy(), r1, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s2.numpy(), r2, rtol=1e-12, atol=1e-9)
    rows = vals[perm] if keep is None else vals[perm[keep]]
    assert torch.equal(kept, rows.clamp(-65504, 65504).half())


def test_first_occurrences_leave_the_sums_of_a_word_seen_once_untouched():
    ids, perm, vals, shift, first = _chunk(1)
    V, W = shift.shape
    s1, s2 = torch.full((V, W), 0.0, dtype=torch.float64), torch.full((V, W), 0.0, dtype=torch.float64)
    seen_once = torch.bincount(ids, minlength=V) == 1
    assert seen_once.any()
    s1[seen_once] = s2[seen_once] = -1.0                                   # a write there would change them
    kept = torch.empty(len(ids), W, dtype=torch.float16)
    k = torch.zeros(V, W)
    moments.accumulate(k, s1, s2, ids, perm, vals, None, kept, 65504.0, {}, first=first)
    assert (s1[seen_once] == -1.0).all() and (s2[seen_once] == -1.0).all()
    assert torch.equal(kept, vals[perm].clamp(-65504, 65504).half())       # their rows are still kept
    assert torch.equal(k, shift)


def test_float16_sample_is_the_hardware_conversion_bit_for_bit():
    """The loop's float16 bits equal torch's .half() of the clamped value for every kind of float32: random bit
    patterns (normal, subnormal and zero in float16, ties), signed zeros and the clamping edges."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2**32, 400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = [0.0, -0.0, 65504, 65519.996, 65520, -65520, 1e30, 2**-24, 2**-25, 1.5 * 2**-25, 2**-14, 6.1e-5,
             1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11)]
    x = np.concatenate([x[np.isfinite(x)], np.array(edges, np.float32)]).astype(np.float32)
    x = x[: len(x) // 7 * 7].reshape(-1, 7)                             # [N, 7]
    n = x.shape[0]
    ids = torch.zeros(n, dtype=torch.int64)
    kept = torch.empty(n, 7, dtype=torch.float16)
    s1, s2 = torch.zeros(1, 7, dtype=torch.float64), torch.zeros(1, 7, dtype=torch.float64)
    moments.accumulate(torch.zeros(1, 7), s1, s2, ids, torch.arange(n), torch.from_numpy(x), None, kept, 65504.0,
                       {})
    assert torch.equal(kept.view(torch.int16), torch.from_numpy(x).clamp(-65504, 65504).half().view(torch.int16))
