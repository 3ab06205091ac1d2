"""Effects of an ablation on its targets, against the chance baseline of random unit sets.

For a tested unit set and its R random sets (same size, same layer and state), every target gets:

- ``delta_mean``: the tested set's effect, ablated minus unablated, on the target's mean measure;
- ``baseline_mean`` and ``baseline_std``: the mean and the sample standard deviation (ddof = 1) of the same
  effect of the R random sets;
- ``z = (delta_mean - baseline_mean) / baseline_std`` (NULL when the random effects do not vary);
- ``p``: the two-sided empirical p-value, the share of random sets whose effect lies at least as far from
  ``baseline_mean`` as the tested set's, counting the tested set itself:
  ``p = (1 + #{r : |d_r - baseline_mean| >= |delta_mean - baseline_mean|}) / (R + 1)``.
  It is never 0 (Phipson & Smyth 2010); with R = 20 the smallest possible p is 1/21 = 0.048.

Language models (``measure`` 'loss', nats): targets are every token ('all'), the tokens of each POS tag
('pos': the predicted word's majority gold tag, ``X`` when unknown) and of each word cluster ('word_cluster':
the predicted word's cluster in the co-clustering of the ablated layer and state; words outside the
co-clustering count in no cluster).

Classifiers: over all documents ('all') the accuracy, the mean probability of the true class and the share of
predictions that flip (``flips``: the unablated run flips none, so its effect is the share itself); per true
class ('label') the accuracy and the mean probability of the true class.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["random_sets", "baseline", "lm_effects", "classifier_effects", "EFFECT_COLUMNS"]

#: The columns an effects frame has (the caller adds the model, the unit set and the run's parameters).
EFFECT_COLUMNS = ["target_kind", "target", "measure", "tokens", "base_mean", "delta_mean", "baseline_mean",
                  "baseline_std", "z", "p"]


def random_sets(hidden: int, size: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` sets of ``size`` distinct units drawn uniformly from 0 .. hidden-1, each sorted.

    The draw depends only on (hidden, size, count, seed): asking again gives the same sets.
    """
    if not 0 < size <= hidden:
        raise ValueError(f"a unit set must have 1 .. {hidden} units, got {size}")
    rng = np.random.default_rng([seed, hidden, size])
    return [np.sort(rng.choice(hidden, size=size, replace=False)) for _ in range(count)]


def baseline(delta: float, random_deltas: np.ndarray) -> tuple[float, float, float | None, float]:
    """(baseline_mean, baseline_std, z, p) of a tested effect against its random sets' effects (see the module)."""
    r = np.asarray(random_deltas, dtype=np.float64)
    if r.size < 2:
        raise ValueError("a baseline needs at least 2 random sets")
    mean, std = float(r.mean()), float(r.std(ddof=1))
    z = (delta - mean) / std if std > 0 else None
    far = np.abs(r - mean) >= abs(delta - mean) - 1e-12 * max(1.0, abs(delta - mean))
    p = (1 + int(far.sum())) / (r.size + 1)
    return mean, std, z, p


def _rows(kind: str, target: str, measure: str, tokens: int, base: float, deltas: np.ndarray,
          tested: int, randoms: Sequence[int]) -> dict:
    """One effects row: ``deltas`` [K] is the effect of every column on this target."""
    mean, std, z, p = baseline(float(deltas[tested]), deltas[list(randoms)])
    return {"target_kind": kind, "target": target, "measure": measure, "tokens": int(tokens), "base_mean": base,
            "delta_mean": float(deltas[tested]), "baseline_mean": mean, "baseline_std": std, "z": z, "p": p}


def _group_means(losses: np.ndarray, codes: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: token count [G] and mean loss of every column [G, K] (float64; codes < 0 belong to none)."""
    inside = codes >= 0
    n = np.bincount(codes[inside], minlength=groups)
    sums = np.zeros((groups, losses.shape[1]))
    np.add.at(sums, codes[inside], losses[inside])
    with np.errstate(invalid="ignore", divide="ignore"):
        return n, sums / n[:, None]


def lm_effects(losses: np.ndarray, targets: np.ndarray, tags: Sequence[str | None],
               word_clusters: Mapping[int, int], tested: int, randoms: Sequence[int]) -> pd.DataFrame:
    """Effects on a language model's loss.

    losses [N - 1, K]: every column's loss of tokens 1 .. N-1 (column 0 unablated); targets [N - 1]: the word
    ids predicted; tags[word_id]: the word's POS tag (None: unknown); word_clusters: word_id -> cluster.
    ``tested`` is the column of the tested set, ``randoms`` the columns of its random sets.
    """
    y = np.asarray(targets, dtype=np.int64)
    rows = []
    all_n, all_mean = _group_means(losses, np.zeros(len(y), dtype=np.int64), 1)
    groupings = [("all", ["all"], np.zeros(len(y), dtype=np.int64))]
    tag_of = np.array([t or "X" for t in tags], dtype=object)
    names, codes = np.unique(tag_of[y], return_inverse=True)
    groupings.append(("pos", [str(t) for t in names], codes.astype(np.int64)))
    if word_clusters:
        lookup = np.full(len(tags), -1, dtype=np.int64)
        for w, c in word_clusters.items():
            lookup[int(w)] = int(c)
        k = int(lookup.max()) + 1
        groupings.append(("word_cluster", [str(c) for c in range(k)], lookup[y]))
    for kind, labels, codes in groupings:
        n, means = (all_n, all_mean) if kind == "all" else _group_means(losses, codes, len(labels))
        for g, label in enumerate(labels):
            if n[g]:
                rows.append(_rows(kind, label, "loss", n[g], float(means[g, 0]), means[g] - means[g, 0], tested,
                                  randoms))
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def classifier_effects(probs: np.ndarray, labels: Sequence[int], label_names: Sequence[str], tested: int,
                       randoms: Sequence[int]) -> pd.DataFrame:
    """Effects on a classifier: probs [D, K, C] of every document in every column (column 0 unablated)."""
    y = np.asarray(labels, dtype=np.int64)
    pred = probs.argmax(axis=2)                                            # [D, K]
    correct = (pred == y[:, None]).astype(np.float64)
    p_true = probs[np.arange(len(y)), :, y]                                # [D, K]
    flips = (pred != pred[:, :1]).astype(np.float64)
    rows = []
    for measure, values in (("accuracy", correct), ("p_true", p_true), ("flips", flips)):
        means = values.mean(axis=0)
        rows.append(_rows("all", "all", measure, len(y), float(means[0]), means - means[0], tested, randoms))
    for c, name in enumerate(label_names):
        mine = y == c
        if not mine.any():
            continue
        for measure, values in (("accuracy", correct), ("p_true", p_true)):
            means = values[mine].mean(axis=0)
            rows.append(_rows("label", str(name), measure, int(mine.sum()), float(means[0]), means - means[0],
                              tested, randoms))
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)
