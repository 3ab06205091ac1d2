"""The reader's comparisons: matching the units of two (model, layer, state) views, and gradient flow.

A part of :class:`app.reader.Reader`, on :class:`app.reader.base.ReaderBase`, which declares what it
uses of the reader: its caches, queries and co-cluster views.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analytics.matching import chance_summary, cluster_overlap, contingency, match_units, shuffled_matching
from app.reader.base import ReaderBase

# chance baseline of the unit matching: 50 random orders of the shared words, each applied to A and to B (100
# draws), so the band is the same whichever model is A and its 95th percentile moves little between seeds
MATCH_SHUFFLES, MATCH_SEED = 50, 0


class CompareMixin(ReaderBase):
    """Unit matching and gradient flow of :class:`app.reader.Reader`."""

    def matching(self, a: tuple[str, int, str], b: tuple[str, int, str], k: int) -> dict[str, Any]:
        """Hungarian matching of the units of a and b = (model, layer, state) over their shared words.

        Returns {"pairs": DataFrame unit_a, unit_b, correlation, cluster_a, cluster_b; "overlap": dict
        (adjusted_rand, nmi, pairs, shared_words); "contingency": DataFrame; "k": k; "chance": the same
        matching on shuffled words (:func:`analytics.matching.chance_summary`)}. The matching and its
        chance level do not depend on k and are computed once per pair; k only relabels them.
        """
        va, vb = self.version(a[0]), self.version(b[0])
        return self._derived.get(("match", a, va, b, vb, k), lambda: self._match(a, b, k))

    def unit_pairs(self, a: tuple[str, int, str], b: tuple[str, int, str]) -> dict[str, Any]:
        """{"pairs": match_units frame, "shared_words": n, "chance": chance_summary} (cached per pair)."""
        va, vb = self.version(a[0]), self.version(b[0])
        return self._derived.get(("pairs", a, va, b, vb), lambda: self._unit_pairs(a, b))

    def _unit_pairs(self, a: tuple[str, int, str], b: tuple[str, int, str]) -> dict[str, Any]:
        da, db = self.layer_data(*a), self.layer_data(*b)
        ia = pd.Series(np.arange(len(da.words)), index=da.words)
        ib = pd.Series(np.arange(len(db.words)), index=db.words)
        ia = ia[~ia.index.duplicated()]
        ib = ib[~ib.index.duplicated()]
        shared = ia.index.intersection(ib.index)
        if len(shared) < 3:
            raise ValueError(f"{a[0]} and {b[0]} share only {len(shared)} co-clustered words; "
                             "units cannot be matched (pick models trained on similar text)")
        ma = da.mean[ia.loc[shared].to_numpy()].astype(np.float64)
        mb = db.mean[ib.loc[shared].to_numpy()].astype(np.float64)
        pairs = match_units(ma, mb)
        shuffled = shuffled_matching(ma, mb, shuffles=MATCH_SHUFFLES, seed=MATCH_SEED)
        return {"pairs": pairs, "shared_words": int(len(shared)),
                "chance": {**chance_summary(shuffled, pairs["correlation"].to_numpy()), "seed": MATCH_SEED}}

    def _match(self, a: tuple[str, int, str], b: tuple[str, int, str], k: int) -> dict[str, Any]:
        up = self.unit_pairs(a, b)
        pairs = up["pairs"].copy()
        va, vb = self.clusters(*a, k), self.clusters(*b, k)
        la = va.units.sort_values("unit")["cluster"].to_numpy()
        lb = vb.units.sort_values("unit")["cluster"].to_numpy()
        pairs["cluster_a"] = la[pairs["unit_a"].to_numpy()]
        pairs["cluster_b"] = lb[pairs["unit_b"].to_numpy()]
        overlap = cluster_overlap(la, lb, pairs)
        overlap["shared_words"] = up["shared_words"]
        return {"pairs": pairs, "overlap": overlap, "contingency": contingency(la, lb, pairs), "k": va.k,
                "chance": up["chance"]}

    def gradient_flow(self, model_ids: Sequence[str]) -> pd.DataFrame:
        ids = [m for m in dict.fromkeys(model_ids) if m]
        key = ("gflow", tuple((m, self._version_or_none(m)) for m in ids))
        return self._small.get(key, lambda: self._q(
            "SELECT model_id, layer, distance, grad_norm, grad_norm_std FROM gradient_flow "
            "WHERE list_contains(?, model_id) ORDER BY model_id, layer, distance", [ids]))
