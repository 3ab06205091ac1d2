"""Matching hidden units across two models (or two layers) by their response profiles.

Unit u of A and unit v of B are compared by the Pearson correlation of their
mean responses over the words both models saw; the Hungarian algorithm
(scipy's ``linear_sum_assignment``) picks the one-to-one matching with the
largest total |correlation|.  Cluster overlap uses scikit-learn's adjusted
Rand and normalised mutual information on the matched units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


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
