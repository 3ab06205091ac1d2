import numpy as np
import pytest

from analytics.matching import cluster_overlap, correlation_matrix, match_units


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
