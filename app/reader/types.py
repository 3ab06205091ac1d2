"""The reader's building blocks: its error for a missing analysis, its LRU cache, and what it returns."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

V = TypeVar("V")


class AnalysisMissingError(LookupError):
    """The model exists but its analysis (responses, co-clusters) is not in the store yet."""

    def __init__(self, model_id: str, what: str, known: Sequence[str] = ()):
        self.model_id, self.known = model_id, list(known)
        super().__init__(f"model {model_id!r} has no {what} yet: its analysis has not finished "
                         f"(run `rnnvis analyze {model_id}` or wait for the job)")

    def __str__(self) -> str:
        return str(self.args[0])


class LRU(Generic[V]):
    """A small thread-safe least-recently-used cache: ``get(key, compute)``."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The cached value of ``key``, computing it once (concurrent callers of one key wait for it)."""
        while True:
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return self._data[key]
                pending = self._pending.get(key)
                if pending is None:
                    self.misses += 1
                    pending = self._pending[key] = threading.Event()
                    break
            pending.wait()  # another thread computes it; then read it (or compute if it failed)
        try:
            value = compute()  # outside the lock: a slow query must not block other keys
            self.put(key, value)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.set()

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass(frozen=True)
class LayerData:
    """One (model, layer, state): the co-clustered words and their signed responses.

    word_ids/words/freq/pos [W]; mean [W, H] float32 (s(w)_u); labels: k -> (word labels [W],
    unit labels [H]); cluster_state: the state whose co-clustering gave the labels.
    """

    model_id: str
    layer: int
    state: str
    word_ids: np.ndarray
    words: np.ndarray
    freq: np.ndarray
    pos: np.ndarray
    mean: np.ndarray
    labels: dict[int, tuple[np.ndarray, np.ndarray]]
    cluster_state: str

    @property
    def ks(self) -> list[int]:
        return sorted(self.labels)

    @property
    def hidden_size(self) -> int:
        return int(self.mean.shape[1])


@dataclass(frozen=True)
class ClusterView:
    """The co-cluster view of one (model, layer, state, k), ready to draw.

    words: one row per co-clustered word (word_id, word, freq, pos, cluster, strength = mean |s| towards
    the paired unit cluster); units: one row per unit (unit, cluster, rank inside its chip, strength);
    edges [k, k] e(W_i, H_j) (word cluster × unit cluster); profiles [W, k] mean |s| of each word towards
    each unit cluster.
    """

    model_id: str
    layer: int
    state: str
    k: int
    cluster_state: str
    words: pd.DataFrame
    units: pd.DataFrame
    edges: np.ndarray
    max_abs: float
