"""The reader's token states: what a model stored, passages, the pattern search's inputs.

A part of :class:`app.reader.Reader`, on :class:`app.reader.base.ReaderBase`, which declares what it
uses of the reader: its caches and version tokens. Everything is keyed
by the model's partition version, so a re-analysis is never served stale. The per-model word ids [N] and
vocabulary arrays are cached (a few MB), and the footer of the token-states file; a pattern's unit series is
read anew at each search (tens of milliseconds), not kept.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics import store
from analytics import token_states as ts
from app.reader.base import ReaderBase
from app.reader.types import AnalysisMissingError


class PatternsMixin(ReaderBase):
    """Token states of :class:`app.reader.Reader`."""

    def _with_con(self, fn):
        con = store.connect(self.root)
        try:
            return fn(con)
        finally:
            con.close()

    def token_info(self, model_id: str) -> ts.TokenStateInfo:
        """The (layer, state)s with token states, tokens and units; AnalysisMissingError when there are none."""
        v = self.version(model_id)
        info = self._small.get(("token-info", model_id, v), lambda: self._with_con(lambda c: ts.info(c, model_id)))
        if not info.keys:
            raise AnalysisMissingError(model_id, "token states (analyse it with --token-states, e.g. 'last')",
                                       self.model_ids())
        return info

    def token_text(self, model_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(word ids [N], words by id, universal tags by id) of the analysed split."""
        v = self.version(model_id)

        def load():
            return self._with_con(lambda c: (ts.word_ids(c, model_id), *ts.vocab_arrays(c, model_id)))
        return self._derived.get(("token-text", model_id, v), load)

    def unit_series(self, model_id: str, layer: int, state: str, units: Sequence[int]) -> np.ndarray:
        """[N, len(units)] float32 values of the units at every position."""
        info = self.token_info(model_id)
        v = self.version(model_id)
        index = self._small.get(("token-index", model_id, v), lambda: ts.UnitIndex.open(
            str(store.table_file(self.root, "models", model_id, "token_states"))))
        return ts.read_units(index, layer, state, units, info.tokens)     # not cached: 4 MB per 10 units x 100k

    def token_passage(self, model_id: str, layer: int, state: str, start: int, stop: int) -> np.ndarray:
        """[stop - start, H] float32: every unit over positions start .. stop - 1."""
        info = self.token_info(model_id)
        key = ("token-passage", model_id, self.version(model_id), layer, state, start, stop)
        return self._small.get(key, lambda: self._with_con(
            lambda c: ts.passage(c, model_id, layer, state, start, stop, info.hidden)))
