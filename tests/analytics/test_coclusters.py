"""Tests of analytics.coclusters."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from analytics.coclusters import (
    canonical_labels,
    cocluster,
    cocluster_frame,
    cocluster_range,
    edge_weights,
    select_words,
)


def _planted(seed: int = 0, sizes_w=(60, 100, 140), sizes_h=(10, 15, 25), strengths=(3.0, 2.0, 1.0), noise=0.2):
    """Block-diagonal non-negative matrix, rows and columns shuffled; returns (X, row_block, col_block)."""
    rng = np.random.default_rng(seed)
    row_block = rng.permutation(np.repeat(np.arange(len(sizes_w)), sizes_w))
    col_block = rng.permutation(np.repeat(np.arange(len(sizes_h)), sizes_h))
    x = rng.uniform(0, noise, (len(row_block), len(col_block)))
    x += (row_block[:, None] == col_block[None, :]) * np.asarray(strengths)[row_block][:, None]
    return x, row_block, col_block


def test_select_words():
    n = np.array([5, 50, 10, 50, 9, 100, 10])
    np.testing.assert_array_equal(select_words(n, top=10, min_count=10), [5, 1, 3, 2, 6])
    np.testing.assert_array_equal(select_words(n, top=2, min_count=10), [5, 1])
    assert select_words(n, top=5, min_count=1000).shape == (0,)


def test_cocluster_shapes_range_and_determinism():
    x, _, _ = _planted()
    rows, cols = cocluster(x, 4, seed=3)
    assert rows.shape == (x.shape[0],) and cols.shape == (x.shape[1],)
    assert rows.min() >= 0 and rows.max() < 4 and cols.min() >= 0 and cols.max() < 4
    rows2, cols2 = cocluster(x, 4, seed=3)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_array_equal(cols, cols2)


def test_planted_blocks_recovered():
    x, row_block, col_block = _planted()
    rows, cols = cocluster(x, 3)
    assert adjusted_rand_score(row_block, rows) == 1.0
    assert adjusted_rand_score(col_block, cols) == 1.0
    # row cluster i pairs with column cluster i: each planted block gets one label on both axes
    for b in range(3):
        assert set(rows[row_block == b]) == set(cols[col_block == b])


def test_canonical_relabelling():
    x, _, _ = _planted(seed=1)
    rows, cols = cocluster(x, 3)
    assert cols[0] == 0
    # unit clusters are numbered by their first (smallest) unit index
    first = [np.flatnonzero(cols == c)[0] for c in range(3)]
    assert first == sorted(first)
    # invariant under any renumbering of the raw labels, applied to both axes
    perm = np.array([2, 0, 1])
    r2, c2 = canonical_labels(perm[rows], perm[cols], 3)
    np.testing.assert_array_equal(r2, rows)
    np.testing.assert_array_equal(c2, cols)
    # clusters with no unit come after, ordered by smallest word index; empty ones last
    r3, c3 = canonical_labels(np.array([3, 1, 2, 1]), np.array([2, 2]), 4)
    np.testing.assert_array_equal(c3, [0, 0])
    np.testing.assert_array_equal(r3, [1, 2, 0, 2])  # 2->0 (unit 0), 3->1 (word 0), 1->2 (word 1), 0 empty->3


def test_rejects_bad_input_with_clear_messages():
    x, _, _ = _planted()
    with pytest.raises(ValueError, match="non-negative.*np.abs"):
        cocluster(x - 1.0, 3)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cocluster(bad, 3)
    with pytest.raises(ValueError, match=r"k=51.*50 units"):
        cocluster(x, 51)
    with pytest.raises(ValueError, match="non-negative"):
        cocluster_range(-x)
    rows, cols = cocluster(x, 1)  # trivial
    assert not rows.any() and not cols.any()


def test_zero_rows_and_columns_are_guarded():
    x, row_block, _ = _planted()
    x[5] = 0.0
    x[:, 7] = 0.0
    rows, cols = cocluster(x, 3)
    keep = np.arange(len(rows)) != 5
    assert adjusted_rand_score(row_block[keep], rows[keep]) > 0.9


def test_cocluster_range_matches_single_k_and_skips_large_k():
    x, _, _ = _planted(sizes_w=(20, 30, 40), sizes_h=(3, 3, 4))  # 90 words × 10 units
    res = cocluster_range(x, ks=range(2, 14), seed=1)
    assert sorted(res) == list(range(2, 11))
    for k in (2, 3, 5, 7, 10):
        rows, cols = cocluster(x, k, seed=1)
        np.testing.assert_array_equal(res[k][0], rows)
        np.testing.assert_array_equal(res[k][1], cols)


def test_edge_weights_are_block_means():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((12, 7))
    rows = np.array([0, 1, 0, 2, 1, 0, 0, 1, 2, 2, 0, 1])
    cols = np.array([1, 0, 0, 1, 0, 0, 1])  # no unit in cluster 2
    e = edge_weights(s, rows, cols, 3)
    assert e.shape == (3, 3)
    for i in range(3):
        for j in range(2):
            assert e[i, j] == pytest.approx(s[np.ix_(rows == i, cols == j)].mean())
    assert np.isnan(e[:, 2]).all()
    with pytest.raises(ValueError, match=r"row_labels must lie in \[0, 1\)"):
        edge_weights(s, rows, cols, 1)


def test_cocluster_frame():
    word_ids = np.array([7, 3, 9])
    res = {3: (np.array([0, 1, 2]), np.array([2, 0])), 2: (np.array([1, 1, 0]), np.array([0, 1]))}
    df = cocluster_frame(res, word_ids)
    assert list(df.columns) == ["k", "axis", "item", "cluster"]
    assert df[["k", "item", "cluster"]].dtypes.tolist() == [np.int32] * 3
    assert df["k"].tolist() == [2] * 5 + [3] * 5
    assert df["axis"].tolist()[:5] == ["word"] * 3 + ["unit"] * 2
    assert df["item"].tolist()[:5] == [7, 3, 9, 0, 1]
    assert df["cluster"].tolist()[5:] == [0, 1, 2, 2, 0]
    with pytest.raises(ValueError, match="word ids"):
        cocluster_frame(res, word_ids[:2])
