"""The reader's 2-D maps: the precomputed ``projections`` of one (model, layer, state), joined with what the
co-cluster view knows of each word and unit.

A part of :class:`app.reader.Reader`, on :class:`app.reader.base.ReaderBase`, which declares what it
uses of the reader: its caches, queries and co-cluster views.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from app.reader.base import ReaderBase
from app.reader.types import AnalysisMissingError, ClusterView

MAP_STATES = ("h", "c")     # the states the analysis co-clusters, hence maps


@dataclass(frozen=True)
class MapView:
    """One (model, layer, state, method, k) map, ready to draw.

    words: word_id, word, freq, pos, cluster, x, y, n (occurrences in the analysed split), one row per
    co-clustered word; units: unit, cluster, x, y;
    params: the fit's parameters per axis (seed, perplexity, ...) as stored.
    """

    model_id: str
    layer: int
    state: str
    method: str
    k: int
    words: pd.DataFrame
    units: pd.DataFrame
    params: dict[str, dict[str, Any]]


class ProjectionMixin(ReaderBase):
    """The projection maps of :class:`app.reader.Reader`."""

    def projection(self, model_id: str, layer: int, state: str, method: str) -> pd.DataFrame:
        """axis, item, x, y, seed, params of one stored map (cached per model version)."""
        v = self.version(model_id)

        def load() -> pd.DataFrame:
            if not self._has_table(model_id, "projections"):
                raise LookupError(f"{model_id} was analysed before the analysis made 2-D maps: run "
                                  f"`rnnvis analyze {model_id}` to add them")
            return self._q("SELECT axis, item, x, y, seed, params FROM projections WHERE model_id = ? AND layer = ? "
                           "AND state = ? AND method = ? ORDER BY axis, item", [model_id, layer, state, method])
        return self._small.get(("projection", model_id, v, layer, state, method), load)

    def map_view(self, model_id: str, layer: int, state: str, method: str, k: int) -> MapView:
        """The words and units of the co-cluster view for k placed on the stored map of ``method``."""
        if state not in MAP_STATES:
            raise ValueError(f"maps exist for the states {' and '.join(MAP_STATES)}, not {state!r}")
        view = self.clusters(model_id, layer, state, k)
        v = self.version(model_id)
        return self._derived.get(("map", model_id, v, layer, state, method, view.k),
                                 lambda: self._map_view(model_id, layer, state, method, view))

    def _map_view(self, model_id: str, layer: int, state: str, method: str, view: ClusterView) -> MapView:
        proj = self.projection(model_id, layer, state, method)
        if proj.empty:
            raise AnalysisMissingError(model_id, f"{method} map of layer {layer} state {state!r}", self.model_ids())
        xy = {axis: g.set_index("item")[["x", "y"]] for axis, g in proj.groupby("axis")}
        words = view.words[["word_id", "word", "freq", "pos", "cluster"]].join(
            xy.get("word", pd.DataFrame(columns=["x", "y"])), on="word_id", how="inner")
        units = view.units[["unit", "cluster"]].join(xy.get("unit", pd.DataFrame(columns=["x", "y"])), on="unit",
                                                      how="inner")
        words["n"] = words["word_id"].map(self._word_counts(model_id, layer, state)).fillna(0).astype("int64")
        params = {axis: {"seed": int(g["seed"].iloc[0]), **json.loads(g["params"].iloc[0] or "{}")}
                  for axis, g in proj.groupby("axis")}
        return MapView(model_id, int(layer), state, method, view.k, words.reset_index(drop=True),
                       units.reset_index(drop=True), params)

    def _word_counts(self, model_id: str, layer: int, state: str) -> pd.Series:
        """word_id -> n, the word's occurrences in the analysed split (the same for every unit: unit 0's)."""
        v = self.version(model_id)
        return self._small.get(("map-n", model_id, v, layer, state), lambda: self._q(
            "SELECT word_id, n FROM word_responses WHERE model_id = ? AND layer = ? AND state = ? AND unit = 0",
            [model_id, layer, state]).set_index("word_id")["n"])
