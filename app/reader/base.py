"""What every part of the :class:`~app.reader.Reader` shares, declared in one place.

The reader is one object built from the query-and-cache core (:mod:`app.reader.core`) and five view parts
(:mod:`.sentences`, :mod:`.compare`, :mod:`.losses`, :mod:`.projection`, :mod:`.patterns`). Each part derives from
:class:`ReaderBase`, which holds the attributes they read (the store root and the caches, typed), the query
helper and version tokens they call, and declares the co-cluster reads the core defines (``layer_data``,
``clusters``, ``vocab``): no part reads an attribute that is not declared here or in itself
(tests/app/test_reader_base.py checks).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import store
from analytics.store import UnknownModelError
from app.reader.types import LRU, ClusterView, LayerData

__all__ = ["ReaderBase"]


class ReaderBase(ABC):
    """The store, the bounded caches and the queries every part of the reader builds on."""

    root: Path
    _prefetcher: ThreadPoolExecutor   # background warm-up of a model's layers (core)
    _small: LRU[Any]                  # model lists, vocab, metrics, word details, sentences
    _layers: LRU[LayerData]           # per (model, version, layer, state)
    _views: LRU[ClusterView]          # per (model, version, layer, state, k)
    _derived: LRU[Any]                # matchings, glyphs, maps, purity
    _models: LRU[Any]                 # loaded checkpoints

    def __init__(self, root: str | os.PathLike[str], *, cache_size: int = 32, checkpoint_cache: int = 4):
        self.root = Path(root)
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnvis-prefetch")
        self._small = LRU[Any](256)          # model lists, vocab, metrics, word details, sentences
        self._layers = LRU[LayerData](cache_size)
        self._views = LRU[ClusterView](cache_size * 4)
        self._derived = LRU[Any](cache_size * 2)   # matchings, glyphs
        self._models = LRU[Any](checkpoint_cache)  # loaded checkpoints

    # ------------------------------------------------------------------ queries and versions
    def _q(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        con = store.connect(self.root)
        try:
            return store.query(con, sql, list(params))
        finally:
            con.close()

    def version(self, model_id: str) -> str:
        """The model partition's version token; UnknownModelError if it is not in the store."""
        try:
            f = store.table_file(self.root, "models", model_id, "models")
        except ValueError:  # not a valid id
            f = None
        if f is None:
            raise UnknownModelError(model_id, self.model_ids())
        return f.name.split(".")[1]

    def model_ids(self) -> list[str]:
        return store.list_partitions(self.root, "models")

    def pending_models(self) -> list[str]:
        """Models with a checkpoint but no analysed partition (training or analysis not finished)."""
        done = set(self.model_ids())
        try:
            names = sorted(p.stem for p in (self.root / "checkpoints").glob("*.pt"))
        except OSError:
            return []
        return [n for n in names if n not in done]

    def _has_table(self, model_id: str, table: str) -> bool:
        return store.table_file(self.root, "models", model_id, table) is not None

    def _version_or_none(self, model_id: str) -> str | None:
        try:
            return self.version(model_id)
        except UnknownModelError:
            return None

    def model(self, model_id: str) -> dict[str, Any]:
        """One model's row as a dict; UnknownModelError (listing the known ids) otherwise."""
        v = self.version(model_id)
        df = self._small.get(("model", model_id, v),
                             lambda: self._q("SELECT * FROM models WHERE model_id = ?", [model_id]))
        if df.empty:
            raise UnknownModelError(model_id, self.model_ids())
        row = df.iloc[0].to_dict()
        row["version"] = v
        return row

    def layer_states(self, model_id: str) -> dict[int, list[str]]:
        """{layer: [states]} analysed for the model (h and c first, then gates)."""
        info = self.model(model_id)
        states = [s for s in str(info.get("states") or "h").split(",") if s]
        return {layer: states for layer in range(int(info["layers"]))}

    # ------------------------------------------------------------------ defined by the core (app/reader/core.py)
    @abstractmethod
    def layer_data(self, model_id: str, layer: int, state: str) -> LayerData:
        """Responses of the co-clustered words and the labels of every k (read once, cached)."""

    @abstractmethod
    def clusters(self, model_id: str, layer: int, state: str, k: int) -> ClusterView:
        """The co-cluster view for k (the nearest stored k if k was not computed)."""

    @abstractmethod
    def vocab(self, model_id: str) -> pd.DataFrame:
        """word_id, word, freq, pos of the model's vocabulary, indexed by word_id."""
