import numpy as np
import pytest

from analytics.matching import chance_summary, cluster_overlap, correlation_matrix, match_units, shuffled_matching


def test_matching_recovers_a_permutation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 12))
    perm = rng.permutation(12)
    sign = np.where(np.arange(12) % 3 == 0, -1.0, 1.0)
    b = a[:, perm] * sign + 0.01 * rng.normal(size=(200, 12))
    m = match_units(a, b)
    assert len(m) == 12
    got = dict(zip(m["unit_a"], m["unit_b"]))
    assert all(got[perm[j]] == j for j in range(12))
    assert (m["correlation"].abs() > 0.99).all()
    assert np.allclose(correlation_matrix(a, a).diagonal(), 1.0)


def test_overlap_of_identical_clusterings():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 6))
    m = match_units(a, a)
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_overlap(labels, labels, m)["adjusted_rand"] == pytest.approx(1.0)


def test_needs_shared_words():
    with pytest.raises(ValueError, match="same words"):
        correlation_matrix(np.zeros((5, 2)), np.zeros((4, 2)))


def test_shuffled_matching_is_the_chance_level_of_the_matching():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16))
    related = a[:, rng.permutation(16)] + 0.5 * rng.normal(size=(300, 16))
    unrelated = rng.normal(size=(300, 16))
    real = match_units(a, related)["correlation"].abs().to_numpy()
    sh = shuffled_matching(a, related, shuffles=4, seed=0)
    assert sh.shape == (8, 16) and (np.diff(sh, axis=1) <= 0).all()       # each row sorted descending
    assert np.array_equal(sh, shuffled_matching(a, related, shuffles=4, seed=0))  # fixed seed: same baseline
    c = chance_summary(sh, real)
    assert c["max"] < 0.35 < real.min() and c["above"] == 16 and c["shuffles"] == 8
    assert c["level"] == pytest.approx(np.quantile(sh[:, 0], 0.95)) and c["level"] <= c["max"]
    assert len(c["by_rank_mean"]) == 16 and (c["by_rank_lo"] <= c["by_rank_hi"]).all()
    # two unrelated models: the real matching is no better than its shuffled baseline
    noise = match_units(a, unrelated)["correlation"].abs().to_numpy()
    cn = chance_summary(shuffled_matching(a, unrelated, shuffles=8, seed=1), noise)
    assert abs(noise.max() - cn["top_mean"]) < 0.1 and cn["above"] <= 2


def test_shuffled_matching_does_not_depend_on_which_model_is_a():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(60, 12))
    b = a[:, :9] + rng.normal(size=(60, 9))
    ab, ba = shuffled_matching(a, b, shuffles=6, seed=0), shuffled_matching(b, a, shuffles=6, seed=0)
    swapped = ba.reshape(6, 2, -1)[:, ::-1].reshape(12, -1)        # the same draws, each pair swapped
    np.testing.assert_allclose(ab, swapped, atol=1e-12)
    for key in ("max", "top_mean", "mean", "above"):
        assert chance_summary(ab, [0.5])[key] == pytest.approx(chance_summary(ba, [0.5])[key], abs=1e-12)
    # each draw is the matching of a permuted side (reference: match_units on the permuted words)
    perm = np.random.default_rng(0).permutation(60)
    np.testing.assert_allclose(ab[0], np.sort(match_units(a, b[perm])["correlation"].abs())[::-1], atol=1e-12)
    np.testing.assert_allclose(ab[1], np.sort(match_units(a[perm], b)["correlation"].abs())[::-1], atol=1e-12)


def test_chance_level_moves_little_between_seeds():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    levels = [chance_summary(shuffled_matching(a, b, shuffles=50, seed=s), [0.0])["level"] for s in range(4)]
    assert max(levels) - min(levels) < 0.03


def test_shuffled_matching_of_unequal_sizes_and_bad_input():
    rng = np.random.default_rng(3)
    assert shuffled_matching(rng.normal(size=(40, 5)), rng.normal(size=(40, 9)), shuffles=2).shape == (4, 5)
    with pytest.raises(ValueError, match="shuffles"):
        shuffled_matching(np.zeros((5, 2)), np.zeros((5, 2)), shuffles=0)
    with pytest.raises(ValueError, match="same words"):
        shuffled_matching(np.zeros((5, 2)), np.zeros((4, 2)))
