"""2-D maps of the co-clustered words and of the units (PCA and t-SNE), precomputed in the analysis.

Words are placed by their response vectors s(w) over the units of one (layer, state), the rows of the signed
response matrix the co-clustering saw; units, the dual, by their response profiles over those words (its
columns). Both use scikit-learn with a fixed seed, so re-running an analysis gives the same map; the
parameters of every map are stored with its rows (``seed`` and ``params``, JSON) and the view never computes
one per click.

t-SNE costs O(n log n) per iteration (Barnes-Hut) after a PCA down to ``TSNE_PCA_DIMS`` dimensions: on the
≤ 500 co-clustered words × 650 units of the demo models a word map takes about a second on one core
(see docs/performance.md).
"""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

log = logging.getLogger(__name__)

__all__ = ["AXES", "METHODS", "PERPLEXITY", "TSNE_PCA_DIMS", "TSNE_MAX_POINTS", "project", "projection_frame"]

AXES = ("word", "unit")
METHODS = ("pca", "tsne")
#: t-SNE's perplexity, lowered to (n − 1) / 3 for small sets (it must stay below the number of points).
PERPLEXITY = 30.0
#: t-SNE runs on the first PCA components (the usual speed-up; it keeps the neighbourhoods).
TSNE_PCA_DIMS = 50
#: t-SNE iterations (250 of them early exaggeration): half sklearn's default, which halves the cost; the maps
#: of a few hundred words have settled by then.
TSNE_MAX_ITER = 500
#: More points than this get no t-SNE map (PCA only): the analysis must stay fast.
TSNE_MAX_POINTS = 5000
#: Threads of the native pools while a map is fitted (see analytics.coclusters.FIT_THREADS).
FIT_THREADS = 1


def _pca(x: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """x [n, d] -> (xy [n, 2], params). Fewer than 2 features or points: the missing axes are 0."""
    n, d = x.shape
    comps = min(2, n, d)
    xy = np.zeros((n, 2))
    ratio: list[float] = []
    if comps >= 1 and n >= 2:
        p = PCA(n_components=comps, random_state=seed, svd_solver="full")
        xy[:, :comps] = p.fit_transform(x)
        ratio = [round(float(r), 6) for r in p.explained_variance_ratio_]
    return xy, {"explained_variance_ratio": ratio, "svd_solver": "full"}


def _tsne(x: np.ndarray, seed: int, perplexity: float) -> tuple[np.ndarray, dict[str, Any]]:
    """x [n, d] -> (xy [n, 2], params): Barnes-Hut t-SNE on the first TSNE_PCA_DIMS principal components."""
    n, d = x.shape
    dims = min(TSNE_PCA_DIMS, n, d)
    pre = PCA(n_components=dims, random_state=seed, svd_solver="full").fit_transform(x) if dims < d else x
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    t = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed,
             max_iter=TSNE_MAX_ITER, method="barnes_hut", metric="euclidean")
    xy = t.fit_transform(pre.astype(np.float64))
    return xy, {"perplexity": perp, "init": "pca", "learning_rate": "auto", "max_iter": TSNE_MAX_ITER,
                "method": "barnes_hut", "metric": "euclidean", "pca_dims": int(dims) if dims < d else None,
                "kl_divergence": round(float(t.kl_divergence_), 6)}


def project(x: np.ndarray, method: str, seed: int = 0, perplexity: float = PERPLEXITY
            ) -> tuple[np.ndarray, dict[str, Any]]:
    """Place the rows of x [n, d] in 2-D: (xy [n, 2] float64, the parameters used).

    ``method`` is 'pca' or 'tsne'; the same x and seed give the same map. t-SNE needs at least 4 points
    (ValueError otherwise). Non-finite values are read as 0.
    """
    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (points × features), got shape {x.shape}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    with threadpool_limits(FIT_THREADS):
        if method == "pca":
            return _pca(x, seed)
        if len(x) < 4:
            raise ValueError(f"t-SNE needs at least 4 points, got {len(x)}")
        return _tsne(x, seed, perplexity)


def projection_frame(mean: np.ndarray, word_ids: np.ndarray, *, seed: int = 0,
                     methods: tuple[str, ...] = METHODS, perplexity: float = PERPLEXITY) -> pd.DataFrame:
    """The maps of one (layer, state): rows axis, method, item, x, y, seed, params.

    mean [W, H]: the signed responses s(w)_u of the co-clustered words (rows in ``word_ids`` order);
    words are placed by its rows (item = word_id), units by its columns (item = unit). A method a set is
    too small or too large for (t-SNE below 4 or above TSNE_MAX_POINTS points) is left out for that axis.
    """
    mean = np.asarray(mean)
    word_ids = np.asarray(word_ids, np.int64)
    if mean.ndim != 2 or mean.shape[0] != len(word_ids):
        raise ValueError(f"mean must be [words, units] with one row per word id, got {mean.shape} "
                         f"for {len(word_ids)} ids")
    frames = []
    for axis, x, items in (("word", mean, word_ids), ("unit", mean.T, np.arange(mean.shape[1], dtype=np.int64))):
        for method in methods:
            if method == "tsne" and not 4 <= len(x) <= TSNE_MAX_POINTS:
                log.info("no t-SNE map of %d %ss (needs 4..%d points)", len(x), axis, TSNE_MAX_POINTS)
                continue
            xy, params = project(x, method, seed, perplexity)
            frames.append(pd.DataFrame({
                "axis": axis, "method": method, "item": items, "x": xy[:, 0].astype(np.float32),
                "y": xy[:, 1].astype(np.float32), "seed": seed,
                "params": json.dumps({"points": int(len(x)), "features": int(x.shape[1]), **params},
                                     sort_keys=True)}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
            ("axis", object), ("method", object), ("item", np.int64), ("x", np.float32), ("y", np.float32),
            ("seed", np.int64), ("params", object))})
    return pd.concat(frames, ignore_index=True)
