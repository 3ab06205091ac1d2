"""Part-of-speech purity of word clusters, against a shuffled baseline.

The paper's first finding is that the co-clusters of a language model group
words by grammatical function. Purity measures it: the share of clustered
words (with a gold tag) whose tag is the majority tag of their cluster. A
number alone says little, because purity rises with the number of clusters and
with how skewed the tag distribution is; so every purity comes with the mean
(and spread) of the same measure after shuffling the tags over the words,
which keeps the cluster sizes and the tag counts and breaks only the pairing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Purity:
    purity: float         # observed share of words whose tag is their cluster's majority tag
    shuffled: float       # mean purity over shuffles of the tags (chance level)
    shuffled_std: float
    words: int            # tagged words that entered the measure

    @property
    def z(self) -> float:
        """How many shuffled standard deviations the observed purity lies above chance."""
        return (self.purity - self.shuffled) / self.shuffled_std if self.shuffled_std > 0 else float("inf")


def _purity(clusters: np.ndarray, tags: np.ndarray, n_tags: int) -> float:
    """clusters [W] ints in 0..k-1, tags [W] ints in 0..n_tags-1 -> purity."""
    k = int(clusters.max()) + 1
    table = np.zeros((k, n_tags), np.int64)
    np.add.at(table, (clusters, tags), 1)
    return float(table.max(axis=1).sum() / len(clusters))


def _encode(clusters, tags) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tagged words as (cluster labels, cluster index [W'], tag names, tag index [W'])."""
    clusters = np.asarray(clusters)
    tags = np.asarray(tags, dtype=object)
    if clusters.shape != tags.shape:
        raise ValueError(f"clusters {clusters.shape} and tags {tags.shape} must have the same shape")
    tagged = np.array([isinstance(t, str) and t != "" for t in tags], dtype=bool)
    if not tagged.any():
        raise ValueError("no clustered word has a POS tag; purity needs a tagged corpus such as Brown")
    labels, c = np.unique(clusters[tagged], return_inverse=True)
    names, t = np.unique(tags[tagged].astype(str), return_inverse=True)
    return labels, c, names, t


def pos_purity(clusters, tags, *, shuffles: int = 200, seed: int = 0) -> Purity:
    """Purity of ``clusters`` [W] (any hashable labels) with respect to ``tags`` [W].

    Words whose tag is None/NaN/empty are left out. Raises ValueError when no
    word has a tag (e.g. a corpus without POS annotation).
    """
    _, c, names, t = _encode(clusters, tags)
    observed = _purity(c, t, len(names))
    rng = np.random.default_rng(seed)
    chance = np.array([_purity(c, rng.permutation(t), len(names)) for _ in range(shuffles)])
    return Purity(observed, float(chance.mean()), float(chance.std()), len(c))


def cluster_purity(clusters, tags, *, shuffles: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per cluster: its POS make-up and its purity against the same shuffled-tag baseline.

    One row per cluster label that has a tagged word: cluster, words (tagged words in it), majority (tag),
    purity (share of its words carrying the majority tag), shuffled / shuffled_std (mean and spread of
    that share when the tags are shuffled over all clustered words: small clusters are purer by chance),
    makeup (dict tag -> count, most frequent first). Raises ValueError like :func:`pos_purity`.
    """
    labels, c, names, t = _encode(clusters, tags)
    k, n_tags = len(labels), len(names)

    def table(tt: np.ndarray) -> np.ndarray:            # [k, n_tags] counts
        return np.bincount(c * n_tags + tt, minlength=k * n_tags).reshape(k, n_tags)

    obs = table(t)
    size = obs.sum(1)
    rng = np.random.default_rng(seed)
    chance = np.stack([table(rng.permutation(t)).max(1) / size for _ in range(shuffles)])   # [shuffles, k]
    rows = []
    for i in range(k):
        order = np.argsort(-obs[i], kind="stable")
        rows.append({"cluster": labels[i].item() if hasattr(labels[i], "item") else labels[i],
                     "words": int(size[i]), "majority": str(names[order[0]]),
                     "purity": float(obs[i].max() / size[i]), "shuffled": float(chance[:, i].mean()),
                     "shuffled_std": float(chance[:, i].std()),
                     "makeup": {str(names[j]): int(obs[i, j]) for j in order if obs[i, j] > 0}})
    return pd.DataFrame(rows)


def model_purity(con, model_id: str, layer: int | None = None, state: str = "h", k: int = 8,
                 **kw) -> Purity:
    """POS purity of a stored model's word clusters (``layer`` None: the last layer).

    ``con`` is a store connection (:func:`analytics.store.connect`).
    """
    if layer is None:
        layer = con.execute("SELECT layers - 1 FROM models WHERE model_id = ?", [model_id]).fetchone()[0]
    rows = con.execute(
        "SELECT c.cluster, v.pos FROM coclusters c JOIN vocab v ON v.model_id = c.model_id AND v.word_id = c.item "
        "WHERE c.model_id = ? AND c.layer = ? AND c.state = ? AND c.k = ? AND c.axis = 'word'",
        [model_id, layer, state, k]).fetchall()
    if not rows:
        raise ValueError(f"{model_id} has no word co-clusters for layer {layer}, state {state}, k {k}")
    clusters, tags = zip(*rows)
    return pos_purity(np.array(clusters), np.array(tags, dtype=object), **kw)
