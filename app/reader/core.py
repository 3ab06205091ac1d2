"""The dashboard's data access object: every query the pages need, with bounded caches.

One :class:`Reader` per app (``create_app`` puts it on ``app.server.config``;
callbacks reach it through :func:`app.context.reader`). It only reads the
store through :func:`analytics.store.query` with ``?`` parameters, and loads
a model's checkpoint only to evaluate a new sentence (or to explain a
classifier's prediction).

Caching. Every cache is an :class:`LRU` owned by the reader (no module-level
state), bounded, and keyed by the model's *partition version* (the hex token
in its Parquet file names, new at every write) plus (layer, state, k, ...):
re-analysing a model changes the version, so stale entries are never hit and
age out. Per (model, layer, state) the signed response matrix of the
co-clustered words and the labels for every k are read once
(:meth:`Reader.layer_data`); a k is then a slice of that (:meth:`clusters`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd

from analytics.coclusters import edge_weights
from analytics.purity import cluster_purity, pos_purity
from app.reader.compare import MATCH_SEED, MATCH_SHUFFLES, CompareMixin
from app.reader.losses import LossesMixin
from app.reader.patterns import PatternsMixin
from app.reader.projection import ProjectionMixin
from app.reader.sentences import SentencesMixin
from app.reader.types import LRU, AnalysisMissingError, ClusterView, LayerData
from app.reader.units import UnitsMixin

__all__ = ["Reader", "LRU", "AnalysisMissingError", "ClusterView", "LayerData", "CLUSTER_STATES", "MATCH_SHUFFLES",
           "MATCH_SEED", "PURITY_SHUFFLES", "PURITY_SEED", "WEAK_N", "WEAK_Z"]

log = logging.getLogger(__name__)

CLUSTER_STATES = ("h", "c")  # states the analysis co-clusters; gates borrow the h clustering
PURITY_SHUFFLES, PURITY_SEED = 200, 0  # chance baseline of POS purity (shuffled tags)
WEAK_N, WEAK_Z = 5, 2.0                # a unit's top word is marked weak below this n or |z|


class Reader(SentencesMixin, CompareMixin, LossesMixin, ProjectionMixin, PatternsMixin, UnitsMixin):
    """Read-only access to one store for the dashboard (sentences in :mod:`app.reader.sentences`, unit
    matching and gradient flow in :mod:`app.reader.compare`)."""

    # ------------------------------------------------------------------ models
    def models(self) -> pd.DataFrame:
        """The ``models`` view (one row per analysed model), sorted by model_id."""
        ids = self.model_ids()
        key = ("models", tuple((m, self._version_or_none(m)) for m in ids))
        return self._small.get(key, lambda: self._q("SELECT * FROM models ORDER BY model_id"))

    def require_analysis(self, model_id: str) -> dict[str, Any]:
        """The model's row; AnalysisMissingError if its responses or co-clusters are missing."""
        info = self.model(model_id)
        for table in ("word_responses", "coclusters"):
            if not self._has_table(model_id, table):
                raise AnalysisMissingError(model_id, table.replace("_", " "), self.model_ids())
        return info

    def metrics(self, model_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """``training_metrics`` of the given models (all if None)."""
        ids = list(model_ids) if model_ids is not None else self.model_ids()
        key = ("metrics", tuple((m, self._version_or_none(m)) for m in ids))
        return self._small.get(key, lambda: self._q(
            "SELECT * FROM training_metrics WHERE list_contains(?, model_id) ORDER BY model_id, epoch, split",
            [ids]))

    def ks(self, model_id: str) -> list[int]:
        v = self.version(model_id)
        df = self._small.get(("ks", model_id, v), lambda: self._q(
            "SELECT DISTINCT k FROM coclusters WHERE model_id = ? ORDER BY k", [model_id]))
        return [int(k) for k in df["k"]]

    def vocab(self, model_id: str) -> pd.DataFrame:
        """word_id, word, freq, pos of the model's vocabulary, indexed by word_id."""
        v = self.version(model_id)
        return self._small.get(("vocab", model_id, v), lambda: self._q(
            "SELECT word_id, word, freq, pos FROM vocab WHERE model_id = ? ORDER BY word_id",
            [model_id]).set_index("word_id", drop=False))

    def word_index(self, model_id: str) -> dict[str, int]:
        v = self.version(model_id)
        return self._small.get(("windex", model_id, v), lambda: {
            w: int(i) for i, w in zip(self.vocab(model_id)["word_id"], self.vocab(model_id)["word"])})

    def lookup_word(self, model_id: str, word: str) -> int | None:
        """word_id of ``word`` (as typed: normalised like the corpus), or None if not in the vocabulary."""
        from models.text import normalize
        index = self.word_index(model_id)
        return index.get(word, index.get(normalize(word)))

    def search_words(self, model_id: str, text: str, limit: int = 50) -> list[str]:
        """Vocabulary words matching what a user typed: those that start with it, then those that contain it,
        each most frequent first (the whole vocabulary, not only the co-clustered words)."""
        from models.text import normalize
        typed = (text or "").strip()
        if not typed:
            return []
        query = normalize(typed)
        voc = self.vocab(model_id)
        words = voc["word"].astype(str)
        lower = words.str.lower()
        hits = []
        for mask in (lower.str.startswith(query) | words.str.startswith(typed),
                     lower.str.contains(query, regex=False) | words.str.contains(typed, regex=False)):
            hits.append(voc.loc[mask.to_numpy()].sort_values(["freq", "word"], ascending=[False, True])["word"])
        return list(dict.fromkeys(pd.concat(hits).astype(str)))[:limit]

    # ------------------------------------------------------------------ co-clusters
    def layer_data(self, model_id: str, layer: int, state: str) -> LayerData:
        """Responses of the co-clustered words and the labels of every k (read once, cached)."""
        v = self.version(model_id)
        return self._layers.get((model_id, v, layer, state), lambda: self._load_layer(model_id, layer, state))

    def _load_layer(self, model_id: str, layer: int, state: str) -> LayerData:
        info = self.require_analysis(model_id)
        states = self.layer_states(model_id).get(layer)
        if states is None or state not in states:
            raise AnalysisMissingError(model_id, f"analysis of layer {layer} state {state!r}", self.model_ids())
        cstate = state if state in CLUSTER_STATES else "h"
        cl = self._q("SELECT k, axis, item, cluster FROM coclusters WHERE model_id = ? AND layer = ? AND state = ? "
                     "ORDER BY k, axis, item", [model_id, layer, cstate])
        if cl.empty:
            raise AnalysisMissingError(model_id, f"co-clusters for layer {layer} state {cstate!r}",
                                       self.model_ids())
        H = int(info["hidden_size"])
        k0 = int(cl["k"].min())
        word_ids = cl.loc[(cl["k"] == k0) & (cl["axis"] == "word"), "item"].to_numpy(np.int64)
        resp = self._q(
            "SELECT word_id, unit, mean FROM word_responses WHERE model_id = ? AND layer = ? AND state = ? "
            "AND word_id BETWEEN ? AND ? AND list_contains(?, word_id)",
            [model_id, layer, state, int(word_ids.min()), int(word_ids.max()), word_ids.tolist()])
        row_of = pd.Series(np.arange(len(word_ids)), index=word_ids)
        mean = np.zeros((len(word_ids), H), np.float32)
        mean[row_of.loc[resp["word_id"].to_numpy()].to_numpy(), resp["unit"].to_numpy()] = resp["mean"].to_numpy()
        labels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k, g in cl.groupby("k", sort=True):
            w = g[g["axis"] == "word"]
            u = g[g["axis"] == "unit"]
            wl = np.zeros(len(word_ids), np.int64)
            wl[row_of.loc[w["item"].to_numpy()].to_numpy()] = w["cluster"].to_numpy()
            ul = np.zeros(H, np.int64)
            ul[u["item"].to_numpy()] = u["cluster"].to_numpy()
            labels[int(k)] = (wl, ul)
        voc = self.vocab(model_id).loc[word_ids]
        return LayerData(model_id, layer, state, word_ids, voc["word"].to_numpy(object),
                         voc["freq"].to_numpy(np.int64), voc["pos"].fillna("").to_numpy(object), mean, labels,
                         cstate)

    def typical_response(self, model_id: str, layer: int, state: str) -> float:
        """The 95th percentile of |s| over the co-clustered words (a default colour clip)."""
        data = self.layer_data(model_id, layer, state)
        q = float(np.quantile(np.abs(data.mean), 0.95)) if data.mean.size else 0.0
        return q if q > 0 else 1.0

    def prefetch(self, model_id: str) -> Future | None:
        """Read every co-clustered (layer, state) of the model in the background, so that switching layer or
        state later hits the cache. Returns the future (None for an unknown model)."""
        try:
            pairs = [(layer, s) for layer, states in self.layer_states(model_id).items()
                     for s in states if s in CLUSTER_STATES]
        except Exception:  # noqa: BLE001 - unknown model: nothing to prefetch, the page says why
            return None

        def run() -> None:
            for layer, s in pairs:
                try:
                    self.layer_data(model_id, layer, s)
                except Exception as e:  # noqa: BLE001 - a background warm-up never fails a request
                    log.debug("prefetch %s L%s %s: %s", model_id, layer, s, e)
        return self._prefetcher.submit(run)

    def clusters(self, model_id: str, layer: int, state: str, k: int) -> ClusterView:
        """The co-cluster view for k (the nearest stored k if k was not computed)."""
        data = self.layer_data(model_id, layer, state)
        k = min(data.ks, key=lambda x: (abs(x - k), x))
        v = self.version(model_id)
        return self._views.get((model_id, v, layer, state, k), lambda: self._cluster_view(data, k))

    @staticmethod
    def _cluster_view(data: LayerData, k: int) -> ClusterView:
        wl, ul = data.labels[k]
        s = data.mean.astype(np.float64)                                     # [W, H]
        a = np.abs(s)
        onehot = np.zeros((data.hidden_size, k))
        onehot[np.arange(data.hidden_size), ul] = 1.0                        # [H, k]
        size = np.maximum(onehot.sum(0), 1)
        profiles = (a @ onehot) / size                                       # [W, k] mean |s| per unit cluster
        strength = profiles[np.arange(len(wl)), wl]
        wcount = np.bincount(wl, minlength=k)
        wonehot = np.zeros((len(wl), k))
        wonehot[np.arange(len(wl)), wl] = 1.0
        unit_strength = (wonehot.T @ a) / np.maximum(wcount, 1)[:, None]     # [k, H] towards each word cluster
        ustr = unit_strength[ul, np.arange(data.hidden_size)]
        units = pd.DataFrame({"unit": np.arange(data.hidden_size), "cluster": ul, "strength": ustr})
        units = units.sort_values(["cluster", "strength", "unit"], ascending=[True, False, True])
        units["rank"] = units.groupby("cluster").cumcount()
        words = pd.DataFrame({"word_id": data.word_ids, "word": data.words, "freq": data.freq, "pos": data.pos,
                              "cluster": wl, "strength": strength})
        for j in range(k):
            words[f"to_H{j}"] = profiles[:, j]
        edges = edge_weights(s, wl, ul, k)
        return ClusterView(data.model_id, data.layer, data.state, k, data.cluster_state, words,
                           units.sort_values("unit").reset_index(drop=True), edges,
                           float(np.nanmax(np.abs(edges))) if np.isfinite(edges).any() else 0.0)

    # ------------------------------------------------------------------ detail
    def word_detail(self, model_id: str, layer: int, state: str, word: str) -> pd.DataFrame:
        """Every unit's response statistics to ``word`` (unit, n, mean, std, q10..q90); empty if unknown."""
        v = self.version(model_id)
        wid = self.lookup_word(model_id, word)
        if wid is None:
            return pd.DataFrame(columns=["unit", "n", "mean", "std", "q10", "q25", "q50", "q75", "q90"])
        return self._small.get(("detail", model_id, v, layer, state, wid), lambda: self._q(
            "SELECT unit, n, mean, std, q10, q25, q50, q75, q90 FROM word_responses "
            "WHERE model_id = ? AND layer = ? AND state = ? AND word_id = ? ORDER BY unit",
            [model_id, layer, state, wid]))

    def unit_words(self, model_id: str, layer: int, state: str, unit: int, top: int = 12) -> pd.DataFrame:
        """The co-clustered words a unit responds to most (positive) and least (negative).

        Ranked by the mean response s(w)_u. Columns word, mean, freq, side ('most'/'least'), n (occurrences
        analysed), std, z = mean / (std / √n) (NaN where std is 0, e.g. n = 1) and weak (n < WEAK_N or
        |z| < WEAK_Z or z undefined: not told apart from noise), sorted by mean descending.
        """
        data = self.layer_data(model_id, layer, state)
        if not 0 <= unit < data.hidden_size:
            raise ValueError(f"unit {unit} is out of range 0..{data.hidden_size - 1}")
        col = data.mean[:, unit]
        order = np.argsort(-col, kind="stable")
        top = min(top, len(order) // 2 or 1)
        hi, lo = order[:top], order[::-1][:top]
        rows = np.concatenate([hi, lo])
        df = pd.DataFrame({"word_id": data.word_ids[rows], "word": data.words[rows], "mean": col[rows],
                           "freq": data.freq[rows], "side": ["most"] * len(hi) + ["least"] * len(lo)})
        stats = self._unit_stats(model_id, layer, state, unit, data.word_ids[rows])
        df = df.merge(stats, on="word_id", how="left").drop(columns="word_id")
        df["n"] = df["n"].fillna(0).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = df["mean"].to_numpy(float) / (df["std"].to_numpy(float) / np.sqrt(df["n"].to_numpy(float)))
        df["z"] = np.where(np.isfinite(z), z, np.nan)
        df["weak"] = (df["n"] < WEAK_N) | ~(df["z"].abs() >= WEAK_Z)
        return df.drop_duplicates("word").sort_values("mean", ascending=False).reset_index(drop=True)

    def _unit_stats(self, model_id: str, layer: int, state: str, unit: int, word_ids: np.ndarray) -> pd.DataFrame:
        """word_id, n, std of one unit for the given words (read once per unit and word set)."""
        v = self.version(model_id)
        ids = sorted(int(w) for w in set(word_ids.tolist()))
        return self._small.get(("ustats", model_id, v, layer, state, unit, tuple(ids)), lambda: self._q(
            "SELECT word_id, n, std FROM word_responses WHERE model_id = ? AND layer = ? AND state = ? "
            "AND unit = ? AND list_contains(?, word_id)", [model_id, layer, state, unit, ids]))

    def purity(self, model_id: str, layer: int, state: str, k: int) -> dict[str, Any]:
        """POS purity of the word clusters of the view for k, against shuffled tags (cached per view).

        {"overall": Purity or None, "clusters": cluster_purity frame or None, "k": k,
         "reason": why there is none (e.g. an untagged corpus) or ""}.
        """
        view = self.clusters(model_id, layer, state, k)
        v = self.version(model_id)

        def compute() -> dict[str, Any]:
            w = view.words
            try:
                kw = dict(shuffles=PURITY_SHUFFLES, seed=PURITY_SEED)
                return {"overall": pos_purity(w["cluster"].to_numpy(), w["pos"].to_numpy(object), **kw),
                        "clusters": cluster_purity(w["cluster"].to_numpy(), w["pos"].to_numpy(object), **kw),
                        "k": view.k, "reason": ""}
            except ValueError:
                return {"overall": None, "clusters": None, "k": view.k,
                        "reason": "the corpus has no POS tags (tagged corpora, e.g. Brown, get a purity)"}
        return self._derived.get(("purity", model_id, v, layer, view.cluster_state, view.k), compute)

    def cache_info(self) -> dict[str, int]:
        return {"small": len(self._small), "layers": len(self._layers), "views": len(self._views),
                "derived": len(self._derived), "checkpoints": len(self._models)}
