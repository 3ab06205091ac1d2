"""Tests of analytics.responses against numpy references."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from analytics import moments, responses
from analytics.responses import QUANTILES, ResponseAccumulator, ResponseStats, response_matrix, z_scores


def _stream(seed: int = 0, vocab: int = 40, hidden: int = 6, n_rows: int = 3000, cap: int = 50):
    """Random ids with singletons and one word far over the cap; float32 values."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, n_rows)
    singles = [1, n_rows // 2, n_rows - 1]
    ids[singles] = [0, 1, 4]  # singletons (n == 1); word 3 never seen
    others = np.setdiff1d(np.arange(n_rows), singles)
    ids[rng.choice(others, min(4 * cap, n_rows // 2), replace=False)] = 2  # word 2: over the cap, spread out
    vals = (rng.standard_normal((n_rows, hidden)) * rng.uniform(0.1, 3, hidden)).astype(np.float32)
    vals[ids == 7] = vals[ids == 7].round(1)  # many exact ties
    return ids, vals


def _feed(acc: ResponseAccumulator, ids: np.ndarray, vals: np.ndarray, sizes=(1, 613, 1000, 7)) -> None:
    start, i = 0, 0
    while start < len(ids):
        step = sizes[i % len(sizes)]
        acc.update(torch.from_numpy(ids[start:start + step]), torch.from_numpy(vals[start:start + step]))
        start += step
        i += 1


def _check_against_numpy(stats: ResponseStats, ids: np.ndarray, vals: np.ndarray, cap: int) -> None:
    expected_words = np.unique(ids)
    np.testing.assert_array_equal(stats.word_ids, expected_words)
    assert stats.word_ids.dtype == np.int64 and stats.n.dtype == np.int64
    assert stats.mean.dtype == stats.std.dtype == stats.quantiles.dtype == np.float32
    assert stats.quantiles.shape == (5, len(expected_words), vals.shape[1])
    for i, w in enumerate(stats.word_ids):
        x = vals[ids == w].astype(np.float64)  # stream order
        assert stats.n[i] == len(x)
        np.testing.assert_allclose(stats.mean[i], x.mean(axis=0), rtol=1e-6, atol=1e-7)
        expected_std = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
        np.testing.assert_allclose(stats.std[i], expected_std, rtol=1e-6, atol=1e-7)
        # quantiles: bit-equal to numpy on the first `cap` occurrences rounded to float16 ...
        first = vals[ids == w][:cap]
        q = np.quantile(first.astype(np.float16).astype(np.float32), QUANTILES, axis=0).astype(np.float32)
        np.testing.assert_array_equal(stats.quantiles[:, i], q)
        # ... so within 11 significant bits (of the larger neighbour) of the float32 values' quantiles
        exact = np.quantile(first, QUANTILES, axis=0)
        assert (np.abs(stats.quantiles[:, i] - exact) <= 2**-11 * np.abs(first).max(axis=0) + 2**-24).all()


def test_stats_match_numpy_reference():
    cap = 50
    ids, vals = _stream(cap=cap)
    threads = torch.get_num_threads()
    acc = ResponseAccumulator(40, vals.shape[1], quantile_cap=cap)
    _feed(acc, ids, vals)
    stats = acc.finalize()
    assert torch.get_num_threads() == threads
    assert acc.n_spills == 0
    assert stats.n[stats.word_ids == 2][0] == 4 * cap  # over the cap: n/mean/std still exact
    assert set(stats.n[np.isin(stats.word_ids, [0, 1, 4])]) == {1}
    assert 3 not in stats.word_ids
    _check_against_numpy(stats, ids, vals, cap)
    np.testing.assert_array_equal(response_matrix(stats), stats.mean)


def test_small_update_blocks_and_cap_inside_one_block(monkeypatch):
    # Sub-chunking inside update() and a word passing the cap within one chunk.
    monkeypatch.setattr(moments, "BLOCK_ELEMS", 40)
    ids, vals = _stream(seed=1, cap=8)
    acc = ResponseAccumulator(40, vals.shape[1], quantile_cap=8)
    acc.update(torch.from_numpy(ids), torch.from_numpy(vals))
    _check_against_numpy(acc.finalize(), ids, vals, cap=8)


def test_telescoping_random_walk():
    # A tanh random walk over one stream: sum_w n_w * mean_w == h_T - h_0.
    rng = np.random.default_rng(2)
    n_steps, hidden = 5000, 16
    h = np.empty((n_steps + 1, hidden), dtype=np.float32)
    h[0] = rng.uniform(-1, 1, hidden)
    noise = rng.standard_normal((n_steps, hidden)).astype(np.float32)
    for t in range(n_steps):
        h[t + 1] = np.tanh(0.9 * h[t] + 0.5 * noise[t])
    delta = np.diff(h, axis=0)  # [T, H] float32
    ids = rng.integers(0, 300, n_steps)
    acc = ResponseAccumulator(300, hidden)
    _feed(acc, ids, delta, sizes=(256, 999, 35))
    stats = acc.finalize()
    total = (stats.n[:, None] * stats.mean.astype(np.float64)).sum(axis=0)
    np.testing.assert_allclose(total, h[-1].astype(np.float64) - h[0], atol=1e-4)


def test_spill_path_equals_memory_path_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr(responses, "SORT_BUDGET_BYTES", 1)  # one column per quantile block
    cap, hidden = 40, responses.BLOCK_COLS + 2  # two spill files, the second 2 columns wide
    ids, vals = _stream(seed=3, hidden=hidden, n_rows=1500, cap=cap)
    spill_dir = tmp_path / "spill"
    acc = ResponseAccumulator(40, hidden, quantile_cap=cap, spill_dir=spill_dir, spill_bytes=20_000)
    _feed(acc, ids, vals, sizes=(397, 13, 500))
    assert acc.n_spills >= 3
    assert len(os.listdir(spill_dir)) == 1  # one private directory ...
    private = spill_dir / os.listdir(spill_dir)[0]
    assert sorted(os.listdir(private)) == ["values_0000.f16", "values_0001.f16", "word_ids.i64"]
    spilled = acc.finalize()
    assert os.listdir(spill_dir) == []  # ... removed by finalize
    _check_against_numpy(spilled, ids, vals, cap)

    ref_acc = ResponseAccumulator(40, hidden, quantile_cap=cap)
    _feed(ref_acc, ids, vals, sizes=(397, 13, 500))
    ref = ref_acc.finalize()
    for name in ("word_ids", "n", "mean", "std", "quantiles"):
        np.testing.assert_array_equal(getattr(spilled, name), getattr(ref, name))


def test_spill_files_removed_when_finalize_fails(tmp_path):
    ids, vals = _stream(seed=4, n_rows=500)
    acc = ResponseAccumulator(40, vals.shape[1], spill_dir=tmp_path, spill_bytes=1_000)
    _feed(acc, ids, vals)
    private = tmp_path / os.listdir(tmp_path)[0]
    with open(private / "word_ids.i64", "r+b") as f:  # simulate a truncated spill (disk full)
        f.truncate(8)
    with pytest.raises(RuntimeError, match="truncated"):
        acc.finalize()
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError, match="after finalize"):
        acc.update(torch.zeros(1, dtype=torch.long), torch.zeros(1, vals.shape[1]))


def test_default_spill_dir_is_temporary_and_removed():
    ids, vals = _stream(seed=5, n_rows=300)
    acc = ResponseAccumulator(40, vals.shape[1], spill_bytes=1_000)
    _feed(acc, ids, vals)
    path = acc._spill_path
    assert path is not None and os.path.isdir(path)
    acc.finalize()
    assert not os.path.exists(path)


def test_to_frame_long_format():
    ids = torch.tensor([3, 1, 3, 3])
    vals = torch.tensor([[1.0, -1.0], [2.0, 0.5], [3.0, -3.0], [5.0, -5.0]])
    acc = ResponseAccumulator(5, 2)
    acc.update(ids, vals)
    stats = acc.finalize()
    df = stats.to_frame(words=["a", "b", "c", "d", "e"])
    assert list(df.columns) == ["word_id", "word", "unit", "n", "mean", "std",
                                "q10", "q25", "q50", "q75", "q90"]
    assert df[["word_id", "unit", "n"]].dtypes.tolist() == [np.int32] * 3
    assert (df[["mean", "std", "q10", "q90"]].dtypes == np.float32).all()
    assert df[["word_id", "unit"]].values.tolist() == [[1, 0], [1, 1], [3, 0], [3, 1]]
    assert df["word"].tolist() == ["b", "b", "d", "d"]
    row = df.iloc[2]  # word 3, unit 0: values 1, 3, 5
    assert row["n"] == 3 and row["mean"] == pytest.approx(3.0) and row["std"] == pytest.approx(2.0)
    assert row["q25"] == pytest.approx(2.0) and row["q50"] == pytest.approx(3.0)
    assert df.iloc[0]["std"] == 0.0  # n == 1
    assert "word" not in stats.to_frame().columns
    with pytest.raises(ValueError, match="vocabulary"):
        stats.to_frame(words=["a", "b"])
    z = z_scores(stats)
    assert np.isnan(z[0]).all() and z[1, 0] == pytest.approx(3.0 / (2.0 / np.sqrt(3)))


def test_empty_and_invalid_input():
    acc = ResponseAccumulator(10, 3)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        acc.update(torch.tensor([0, 10]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="shape"):
        acc.update(torch.tensor([0, 1]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(torch.tensor([0]), torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="integer"):
        acc.update(torch.tensor([0.0]), torch.zeros(1, 3))
    acc.update(torch.zeros(0, dtype=torch.long), torch.zeros(0, 3))
    stats = acc.finalize()
    assert stats.word_ids.shape == (0,) and stats.mean.shape == (0, 3) and stats.quantiles.shape == (5, 0, 3)
    assert len(stats.to_frame()) == 0
    with pytest.raises(RuntimeError, match="twice"):
        acc.finalize()


def test_std_is_numerically_sound_for_large_offsets():
    # Tiny spread on a large offset: a naive E[x^2] - E[x]^2 loses ~5 digits here.
    rng = np.random.default_rng(6)
    ids = rng.integers(0, 3, 20_000)
    vals = (50.0 + 1e-4 * rng.standard_normal((20_000, 4))).astype(np.float32)
    acc = ResponseAccumulator(3, 4)
    _feed(acc, ids, vals, sizes=(333, 4096))
    stats = acc.finalize()
    for i, w in enumerate(stats.word_ids):
        x = vals[ids == w].astype(np.float64)
        np.testing.assert_allclose(stats.std[i], x.std(axis=0, ddof=1), rtol=1e-6)


def test_column_ranges_match_separate_accumulators():
    # One accumulator over the columns of two "states" side by side == one per state.
    ids, vals = _stream(seed=7, hidden=10, n_rows=900, cap=30)
    both = ResponseAccumulator(40, 10, quantile_cap=30)
    _feed(both, ids, vals, sizes=(300, 17, 99))
    parts = [both.stats(0, 4), both.stats(4, 10)]
    both.close()
    for (c0, c1), got in zip([(0, 4), (4, 10)], parts):
        alone = ResponseAccumulator(40, c1 - c0, quantile_cap=30)
        _feed(alone, ids, np.ascontiguousarray(vals[:, c0:c1]), sizes=(300, 17, 99))
        ref = alone.finalize()
        for name in ("word_ids", "n", "mean", "std", "quantiles"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    with pytest.raises(RuntimeError, match="after finalize"):
        both.stats(0, 4)


def test_values_beyond_float16_are_clamped_for_quantiles_only():
    acc = ResponseAccumulator(2, 2)
    vals = torch.tensor([[1e5, -1.0], [3e5, -2.0], [-7e4, -3.0]])
    acc.update(torch.tensor([0, 0, 1]), vals)
    stats = acc.finalize()
    assert acc.clamped == 3
    np.testing.assert_allclose(stats.mean[0], [2e5, -1.5], rtol=1e-6)   # mean and std from the exact values
    np.testing.assert_allclose(stats.std[0], [np.std([1e5, 3e5], ddof=1), np.std([-1.0, -2.0], ddof=1)], rtol=1e-6)
    assert stats.quantiles[:, 0, 0].max() == 65504.0 and stats.quantiles[:, 1, 0].min() == -65504.0


def test_systematic_keep_spreads_a_fixed_sample_over_the_text():
    from analytics.quantiles import systematic_keep
    ids = np.array([5] * 10 + [2] * 3 + [5] * 7)                       # word 5: 17 occurrences, word 2: 3
    keep = systematic_keep(ids, cap=4)
    assert keep[ids == 2].all()                                          # c <= cap: every occurrence
    j = np.flatnonzero(keep[ids == 5]) + 1                               # 1-based ranks kept
    np.testing.assert_array_equal(j, np.ceil(np.arange(1, 5) * 17 / 4))  # ceil(m c / cap), m = 1..cap
    big = np.random.default_rng(0).integers(0, 50, 100_000)
    kept = np.bincount(big[systematic_keep(big, cap=300)], minlength=50)
    np.testing.assert_array_equal(kept, np.minimum(np.bincount(big, minlength=50), 300))
    assert systematic_keep(np.zeros(0, np.int64), 3).shape == (0,)


def test_keep_mask_selects_the_quantile_sample():
    ids, vals = _stream(seed=8, cap=20)
    from analytics.quantiles import systematic_keep
    keep = systematic_keep(ids, cap=20)
    acc = ResponseAccumulator(40, vals.shape[1], quantile_cap=5)         # the cap is the default rule's only
    start = 0
    for step in (1, 613, 1000, 7, 2000):
        sl = slice(start, start + step)
        acc.update(torch.from_numpy(ids[sl]), torch.from_numpy(vals[sl]), keep=torch.from_numpy(keep[sl]))
        start += step
    stats = acc.finalize()
    for i, w in enumerate(stats.word_ids):
        x = vals[ids == w].astype(np.float64)
        np.testing.assert_allclose(stats.mean[i], x.mean(axis=0), rtol=1e-6, atol=1e-7)   # every row
        sample = vals[(ids == w) & keep].astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(stats.quantiles[:, i],
                                      np.quantile(sample, QUANTILES, axis=0).astype(np.float32))
    # A word none of whose rows is kept has NaN quantiles (and exact mean, n).
    acc = ResponseAccumulator(3, 2)
    acc.update(torch.tensor([0, 1, 1]), torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
               keep=torch.tensor([True, False, False]))
    stats = acc.finalize()
    assert stats.quantiles[:, 0, 0].tolist() == [1.0] * 5 and np.isnan(stats.quantiles[:, 1]).all()
    assert stats.mean[1].tolist() == [4.0, 5.0]
    with pytest.raises(ValueError, match="keep"):
        ResponseAccumulator(3, 2).update(torch.tensor([0]), torch.zeros(1, 2), keep=torch.tensor([1]))


@pytest.mark.parametrize("spill_bytes", [responses.SPILL_BYTES, 2_000])
def test_retract_and_replace_at_positions_equals_the_corrected_stream(tmp_path, spill_bytes):
    """Rows corrected after the fact (as the exact LM trace does): retract the old, update the new at the same
    positions.  n, mean, std and the quantile sample equal those of the corrected stream fed once."""
    cap = 30
    ids, vals = _stream(seed=6, n_rows=1200, cap=cap)
    fixed = vals.copy()
    wrong = np.arange(100, 400)                                         # rows first added with wrong values
    vals_wrong = vals.copy()
    vals_wrong[wrong] += np.float32(0.75)
    keep = np.zeros(len(ids), bool)
    keep[::3] = True
    pos = torch.arange(len(ids))
    acc = ResponseAccumulator(40, vals.shape[1], quantile_cap=cap, spill_dir=tmp_path, spill_bytes=spill_bytes)
    for a in range(0, len(ids), 250):
        b = min(a + 250, len(ids))
        acc.update(torch.from_numpy(ids[a:b]), torch.from_numpy(vals_wrong[a:b]), keep=torch.from_numpy(keep[a:b]),
                   positions=pos[a:b])
    for a in range(100, 400, 64):                                       # the corrections, window by window
        b = min(a + 64, 400)
        acc.retract(torch.from_numpy(ids[a:b]), torch.from_numpy(vals_wrong[a:b]))
        acc.update(torch.from_numpy(ids[a:b]), torch.from_numpy(fixed[a:b]), keep=torch.from_numpy(keep[a:b]),
                   positions=pos[a:b])
    got = acc.finalize()
    ref = ResponseAccumulator(40, vals.shape[1], quantile_cap=cap)
    ref.update(torch.from_numpy(ids), torch.from_numpy(fixed), keep=torch.from_numpy(keep))
    want = ref.finalize()
    np.testing.assert_array_equal(got.word_ids, want.word_ids)
    np.testing.assert_array_equal(got.n, want.n)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.quantiles, want.quantiles)
    for i, w in enumerate(got.word_ids):                                # and against numpy in float64
        x = fixed[ids == w].astype(np.float64)
        np.testing.assert_allclose(got.mean[i], x.mean(axis=0), rtol=1e-6, atol=1e-6)
