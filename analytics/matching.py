"""Matching hidden units across two models (or two layers) by their response profiles.

Unit u of A and unit v of B are compared by the Pearson correlation of their
mean responses over the words both models saw; the Hungarian algorithm
(scipy's ``linear_sum_assignment``) picks the one-to-one matching with the
largest total |correlation|.  Cluster overlap uses scikit-learn's adjusted
Rand and normalised mutual information on the matched units.

Chance baseline: with hundreds of units, the best of many weak correlations is
not small, so a matched |r| means little alone. :func:`shuffled_matching`
reruns the same matching after permuting the shared words of one side
independently of the other (each unit keeps its own distribution of responses,
and a model's units keep their correlations with each other; only the word
pairing is broken). Each random order is applied once to B's words and once to
A's, so the baseline is the same whichever model is A (the draws of the swapped
pair are the transposes of these), with a fixed seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

CHANCE_QUANTILE = 0.95   # chance threshold: this quantile of the shuffles' best |r|


def correlation_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [W, Ha], b [W, Hb] responses over the same W words -> [Ha, Hb] Pearson correlations (0 where flat)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"need responses over the same words, got {a.shape[0]} and {b.shape[0]} rows")
    if a.shape[0] < 3:
        raise ValueError("need at least 3 shared words to correlate units")
    za = a - a.mean(0)
    zb = b - b.mean(0)
    na, nb = np.linalg.norm(za, axis=0), np.linalg.norm(zb, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (za.T @ zb) / np.outer(na, nb)
    return np.nan_to_num(c, nan=0.0)


def match_units(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Hungarian matching on |correlation|: unit_a, unit_b, correlation, sorted by |correlation| desc."""
    c = correlation_matrix(a, b)
    rows, cols = linear_sum_assignment(-np.abs(c))
    out = pd.DataFrame({"unit_a": rows, "unit_b": cols, "correlation": c[rows, cols]})
    return out.reindex(out["correlation"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _matched_abs(c: np.ndarray) -> np.ndarray:
    """|correlation| of the Hungarian matching of c [Ha, Hb], sorted descending."""
    rows, cols = linear_sum_assignment(-np.abs(c))
    return np.sort(np.abs(c[rows, cols]))[::-1]


def shuffled_matching(a: np.ndarray, b: np.ndarray, *, shuffles: int = 5, seed: int = 0) -> np.ndarray:
    """Chance level of :func:`match_units`: a [W, Ha], b [W, Hb] -> [2 * shuffles, min(Ha, Hb)].

    Rows 2s and 2s + 1 hold the matched |correlation| (sorted descending, rank by rank comparable with the
    real matching) after permuting the W words of ``b``, and of ``a``, with the s-th permutation of
    ``default_rng(seed)``. Permuting a's words by p is permuting b's by p's inverse, so the set of draws
    is closed under swapping a and b: ``shuffled_matching(b, a)`` has the same rows, pairwise swapped.
    """
    if shuffles < 1:
        raise ValueError(f"shuffles must be at least 1, got {shuffles}")
    correlation_matrix(a, b)  # same checks (shapes, at least 3 words)
    za = a - a.mean(0)
    zb = b - b.mean(0)
    na, nb = np.linalg.norm(za, axis=0), np.linalg.norm(zb, axis=0)
    rng = np.random.default_rng(seed)
    out = np.empty((2 * shuffles, min(a.shape[1], b.shape[1])))
    norms = np.outer(na, nb)             # centring and norms do not change under a permutation
    for s in range(shuffles):            # each shuffle: two GEMMs + two assignments
        perm = rng.permutation(a.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[2 * s] = _matched_abs(np.nan_to_num((za.T @ zb[perm]) / norms, nan=0.0))
            out[2 * s + 1] = _matched_abs(np.nan_to_num((za[perm].T @ zb) / norms, nan=0.0))
    return out


def chance_summary(shuffled: np.ndarray, observed: np.ndarray) -> dict[str, object]:
    """Summary of :func:`shuffled_matching` against the observed correlations of the real matching.

    Returns level (the chance threshold: the 95th percentile over shuffles of each shuffle's best |r|; a
    quantile, not the max, so that it moves little between seeds), max (the best |r| any shuffle reached),
    top_mean (mean over shuffles of the best |r|),
    mean (mean |r| of all shuffled matches), by_rank_mean / by_rank_lo / by_rank_hi (per rank, descending:
    mean, min and max over shuffles), above (observed pairs with |r| above ``level``), shuffles (the number of
    draws: rows of ``shuffled``).
    """
    obs = np.abs(np.asarray(observed, dtype=float))
    level = float(np.quantile(shuffled[:, 0], CHANCE_QUANTILE))
    return {"level": level, "max": float(shuffled.max()), "top_mean": float(shuffled[:, 0].mean()),
            "mean": float(shuffled.mean()), "by_rank_mean": shuffled.mean(0), "by_rank_lo": shuffled.min(0),
            "by_rank_hi": shuffled.max(0), "above": int((obs > level).sum()),
            "shuffles": int(shuffled.shape[0])}


def cluster_overlap(labels_a: np.ndarray, labels_b: np.ndarray, matches: pd.DataFrame) -> dict[str, float]:
    """Agreement of the unit clusterings of A and B over matched unit pairs."""
    la = np.asarray(labels_a)[matches["unit_a"].to_numpy()]
    lb = np.asarray(labels_b)[matches["unit_b"].to_numpy()]
    return {"adjusted_rand": float(adjusted_rand_score(la, lb)),
            "nmi": float(normalized_mutual_info_score(la, lb)), "pairs": int(len(matches))}


def contingency(labels_a: np.ndarray, labels_b: np.ndarray, matches: pd.DataFrame) -> pd.DataFrame:
    """Matched unit counts per (cluster of A, cluster of B)."""
    la = np.asarray(labels_a)[matches["unit_a"].to_numpy()]
    lb = np.asarray(labels_b)[matches["unit_b"].to_numpy()]
    return pd.crosstab(pd.Series(la, name="cluster_a"), pd.Series(lb, name="cluster_b"))
