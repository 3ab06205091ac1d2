"""The dashboard's data access: one :class:`Reader` per app, with bounded caches.

- :mod:`.core`: the reader itself (model lists, vocabularies, layer data, clusters, word and unit details,
  purity), the query and cache layer that the other parts build on;
- :mod:`.base`: :class:`~app.reader.base.ReaderBase`, what every part of the reader shares (the store root, the
  typed caches, the query helper, version tokens and the co-cluster reads), declared once;
- :mod:`.types`: the bounded :class:`LRU`, the frames it caches and :class:`AnalysisMissingError`;
- :mod:`.sentences`, :mod:`.compare`, :mod:`.losses`, :mod:`.projection`, :mod:`.patterns`: the views' reads
  (evaluated sentences and glyphs, unit matching and gradient flow, losses of two models, 2-D maps,
  token-state passages). The maths they
  call lives in :mod:`analytics` (glyphs, matching, projections, purity, token states).
"""
from __future__ import annotations

from app.reader.compare import MATCH_SEED, MATCH_SHUFFLES
from app.reader.core import CLUSTER_STATES, PURITY_SEED, PURITY_SHUFFLES, WEAK_N, WEAK_Z, Reader
from app.reader.losses import LossMismatchError
from app.reader.projection import MAP_STATES, MapView
from app.reader.types import LRU, AnalysisMissingError, ClusterView, LayerData

__all__ = ["Reader", "LossMismatchError", "LRU", "AnalysisMissingError", "ClusterView", "LayerData", "MapView",
           "CLUSTER_STATES", "MAP_STATES", "MATCH_SHUFFLES", "MATCH_SEED", "PURITY_SHUFFLES", "PURITY_SEED", "WEAK_N",
           "WEAK_Z"]
