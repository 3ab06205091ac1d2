"""Spectral co-clustering of the words × units response matrix, and its edges.

The input of the clustering is a NON-NEGATIVE strength matrix [W, H]; the
caller passes |s| (or one half of a positive/negative split), never the signed
response matrix s (the original RNNVis silently shifted it). Edges between
word cluster W_i and unit cluster H_j are the mean of the *signed* s over the
block (:func:`edge_weights`).

Labels are canonical: clusters are renumbered by their smallest unit index
(unit cluster 0 holds unit 0, cluster 1 holds the lowest unit not in cluster
0, ...); clusters with no unit come after, ordered by their smallest word
index. In spectral co-clustering row cluster i pairs with column cluster i,
so the same permutation is applied to both axes.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from sklearn.cluster import SpectralCoclustering
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

logger = logging.getLogger(__name__)

#: k-means restarts on the spectral embedding (sklearn's default). The
#: randomized SVD dominates the run time: k=20 on 10,000 × 650 takes ~0.35 s
#: with 10 restarts, ~0.33 s with 3 (2 cores, FIT_THREADS = 1).
N_INIT = 10
#: Threads of every native pool (BLAS, OpenMP) while a fit runs. The SVD's
#: products are thin (W × H times H × ~16) and k-means runs on W + H points in
#: log2(k) dimensions, so threads buy little; on a busy 2-core machine
#: OpenBLAS's spinning workers and k-means' OpenMP team fight each other and a
#: fit took 0.5-2 s (tiny inputs: 10x slower) instead of a steady ~0.3 s. The
#: limit is set for the duration of the fit only (threadpoolctl) and restored;
#: the BLAS part is process-wide meanwhile.
FIT_THREADS = 1
#: Added to all-zero rows/columns: SpectralCoclustering divides by row and
#: column sums. Relative to the matrix maximum.
ZERO_EPS = 1e-12


def select_words(n: np.ndarray, top: int = 500, min_count: int = 10) -> np.ndarray:
    """Indices into the stats rows of the ``top`` most frequent words with n >= min_count.

    Ordered by frequency (descending), ties by index; may return fewer than ``top``.
    n: [W] counts. Returns [<= top] int64.
    """
    n = np.asarray(n)
    if n.ndim != 1:
        raise ValueError(f"n must be 1-D (one count per word), got shape {n.shape}")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    eligible = np.flatnonzero(n >= min_count)
    order = np.argsort(-n[eligible], kind="stable")  # stable: ties keep index order
    return eligible[order][:top].astype(np.int64)


def _check_strength(strength: np.ndarray) -> np.ndarray:
    """Validate a non-negative [W, H] matrix; return a float64 copy with zero rows/columns guarded."""
    x = np.array(strength, dtype=np.float64)  # copy: we may add epsilon in place
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"strength must be a non-empty 2-D [words, units] matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("strength contains NaN or inf; drop or impute those words/units before co-clustering")
    if (x < 0).any():
        raise ValueError(
            f"strength must be non-negative (min {x.min():.4g}); pass np.abs(s) or a "
            "positive/negative split, never the signed response matrix"
        )
    # Guard the row/column-sum normalisation of SpectralCoclustering: an
    # all-zero row or column would divide by zero. Only those get epsilon.
    eps = ZERO_EPS * max(float(x.max()), 1.0)
    zero_rows = x.sum(axis=1) == 0
    zero_cols = x.sum(axis=0) == 0
    if zero_rows.any() or zero_cols.any():
        logger.debug("co-clustering: %d all-zero rows, %d all-zero columns get epsilon",
                     int(zero_rows.sum()), int(zero_cols.sum()))
        x[zero_rows, :] += eps
        x[:, zero_cols] += eps
    return x


def _check_k(k: int, shape: tuple[int, int]) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > min(shape):
        raise ValueError(
            f"k={k} co-clusters need at least k words and k units, but the matrix is "
            f"{shape[0]} words × {shape[1]} units; lower k or select more words"
        )


def canonical_labels(row_labels: np.ndarray, col_labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber co-cluster labels canonically (same permutation on both axes).

    Clusters are ordered by their smallest unit (column) index; clusters
    without units follow, ordered by their smallest word (row) index; clusters
    with neither come last. Returns (rows [W] int32, cols [H] int32).
    """
    rows = np.asarray(row_labels, dtype=np.int64)
    cols = np.asarray(col_labels, dtype=np.int64)
    n_rows, n_cols = rows.shape[0], cols.shape[0]
    key = n_cols + n_rows + np.arange(k, dtype=np.int64)  # empty clusters: last, in old order
    labs, first = np.unique(rows, return_index=True)  # first member index per label
    key[labs] = n_cols + first
    labs, first = np.unique(cols, return_index=True)
    key[labs] = first
    order = np.argsort(key, kind="stable")  # old labels in canonical order
    new = np.empty(k, dtype=np.int32)
    new[order] = np.arange(k, dtype=np.int32)
    return new[rows], new[cols]


class _SharedSVDCoclustering(SpectralCoclustering):
    """SpectralCoclustering whose SVD is memoised per number of vectors.

    Only used by :func:`cocluster_range` on ONE matrix: k uses
    1 + ceil(log2 k) singular vectors, so k = 5..8 share one SVD, 9..16
    another, and so on. With an int ``random_state`` every ``_svd`` call on
    the same matrix returns the same vectors, so results equal a fresh
    ``SpectralCoclustering`` per k (checked by the tests; relies on the
    private ``_svd`` hook of scikit-learn 1.9).
    """

    _svd_cache: dict | None = None

    def _svd(self, array, n_components, n_discard):  # noqa: D401 - sklearn hook
        if self._svd_cache is None:
            return super()._svd(array, n_components, n_discard)
        key = (n_components, n_discard)
        if key not in self._svd_cache:
            self._svd_cache[key] = super()._svd(array, n_components, n_discard)
        return self._svd_cache[key]


def _make_model(k: int, seed: int, cls: type[SpectralCoclustering] = SpectralCoclustering) -> SpectralCoclustering:
    # randomized SVD (seeded, deterministic; the 'arpack' path of sklearn uses
    # an unseeded start vector and keeps the trivial singular vector), full
    # k-means with N_INIT seeded restarts.
    return cls(n_clusters=k, svd_method="randomized", n_svd_vecs=None, mini_batch=False,
               n_init=N_INIT, random_state=seed)


def _fit(x: np.ndarray, k: int, seed: int, cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    if k == 1:  # nothing to cluster
        return np.zeros(x.shape[0], np.int32), np.zeros(x.shape[1], np.int32)
    if cache is None:
        model = _make_model(k, seed)
    else:
        model = _make_model(k, seed, _SharedSVDCoclustering)
        model._svd_cache = cache
    with threadpool_limits(limits=FIT_THREADS):
        model.fit(x)
    return canonical_labels(model.row_labels_, model.column_labels_, k)


def cocluster(strength: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spectral co-clustering (Dhillon 2001, scikit-learn) of a non-negative matrix.

    strength: [W, H] non-negative (|s|). Returns (row_labels [W] int32,
    col_labels [H] int32) in 0..k-1, canonically numbered (module docstring);
    row cluster i pairs with column cluster i. Deterministic for a fixed seed.
    Raises ValueError for negative/NaN input or k > min(W, H).
    """
    x = _check_strength(strength)
    _check_k(k, x.shape)
    return _fit(x, int(k), seed)


def cocluster_range(
    strength: np.ndarray, ks: Iterable[int] = range(2, 21), *, seed: int = 0
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """:func:`cocluster` for every k in ``ks``; k > min(W, H) is skipped silently.

    Validation runs once and the SVD is shared between k with the same number
    of singular vectors; the result for each k equals ``cocluster(strength, k, seed=seed)``.
    """
    x = _check_strength(strength)
    cache: dict = {}
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in ks:
        if k > min(x.shape):
            continue
        _check_k(k, x.shape)
        out[int(k)] = _fit(x, int(k), seed, cache)
    return out


def edge_weights(signed: np.ndarray, row_labels: np.ndarray, col_labels: np.ndarray, k: int) -> np.ndarray:
    """Edge weights e(W_i, H_j) = mean of the signed matrix over block (i, j).

    signed: [W, H] signed responses s; row_labels [W], col_labels [H] in 0..k-1.
    Returns [k, k] float64 (word cluster × unit cluster); NaN for empty blocks.
    """
    s = np.asarray(signed, dtype=np.float64)
    rows = np.asarray(row_labels)
    cols = np.asarray(col_labels)
    if s.ndim != 2 or rows.shape != (s.shape[0],) or cols.shape != (s.shape[1],):
        raise ValueError(
            f"shape mismatch: signed {s.shape}, row_labels {rows.shape}, col_labels {cols.shape}"
        )
    for name, lab in (("row_labels", rows), ("col_labels", cols)):
        if lab.size and (lab.min() < 0 or lab.max() >= k):
            raise ValueError(f"{name} must lie in [0, {k}), got [{lab.min()}, {lab.max()}]")
    if not np.isfinite(s).all():
        raise ValueError("signed contains NaN or inf; block means would be undefined")
    r = (rows[None, :] == np.arange(k)[:, None]).astype(np.float64)  # [k, W] one-hot
    c = (cols[:, None] == np.arange(k)[None, :]).astype(np.float64)  # [H, k] one-hot
    sums = (r @ s) @ c  # [k, k] block sums
    counts = np.outer(r.sum(axis=1), c.sum(axis=0))  # [k, k] block sizes
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def cocluster_frame(
    results: Mapping[int, tuple[np.ndarray, np.ndarray]], word_ids: np.ndarray
) -> pd.DataFrame:
    """Long frame for the store table ``coclusters`` (caller adds model_id, layer, state).

    results: {k: (row_labels [W], col_labels [H])} as from :func:`cocluster_range`;
    word_ids: [W] the word id of each clustered row. Columns: k, axis
    ('word' | 'unit'), item (word_id or unit index), cluster; int32 ints,
    rows ordered by k, then words before units, then item position.
    """
    word_ids = np.asarray(word_ids)
    parts = []
    for k in sorted(results):
        rows, cols = results[k]
        if len(rows) != len(word_ids):
            raise ValueError(f"k={k}: {len(rows)} row labels but {len(word_ids)} word ids")
        n_r, n_c = len(rows), len(cols)
        parts.append(pd.DataFrame({
            "k": np.full(n_r + n_c, k, dtype=np.int32),
            "axis": np.array(["word"] * n_r + ["unit"] * n_c, dtype=object),
            "item": np.concatenate([word_ids, np.arange(n_c)]).astype(np.int32),
            "cluster": np.concatenate([rows, cols]).astype(np.int32),
        }))
    if not parts:
        return pd.DataFrame({"k": pd.Series(dtype=np.int32), "axis": pd.Series(dtype=object),
                             "item": pd.Series(dtype=np.int32), "cluster": pd.Series(dtype=np.int32)})
    return pd.concat(parts, ignore_index=True)
