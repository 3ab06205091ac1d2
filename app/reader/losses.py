"""The reader's outcomes: where one language model beats another, a classifier's classes, stored ablations, POS
probes.

A mixin of :class:`app.reader.Reader` (it uses the reader's caches and queries); the maths is in
:mod:`analytics.loss_compare`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analytics.loss_compare import LossComparison, compare_losses
from app.reader.base import ReaderBase
from app.reader.types import AnalysisMissingError

__all__ = ["LossesMixin", "LossMismatchError"]


class LossMismatchError(ValueError):
    """Two models whose losses cannot be compared (different tasks, corpora or analysed splits)."""


class LossesMixin(ReaderBase):
    """Per-token losses and classifier outcomes of :class:`app.reader.Reader`."""

    def token_losses(self, model_id: str) -> pd.DataFrame:
        """position, word, sentence, nll of a language model's analysed split (cached per version)."""
        v = self.version(model_id)
        if not self._has_table(model_id, "token_loss"):
            raise AnalysisMissingError(model_id, "token losses", self.model_ids())
        return self._derived.get(("token_loss", model_id, v), lambda: self._token_losses(model_id))

    def _token_losses(self, model_id: str) -> pd.DataFrame:
        df = self._q("SELECT t.position, v.word, t.nll FROM token_loss t JOIN vocab v "
                     "ON v.model_id = t.model_id AND v.word_id = t.word_id "
                     "WHERE t.model_id = ? ORDER BY t.position", [model_id])
        eos = (df["word"] == "<eos>").to_numpy()
        df["sentence"] = np.concatenate([[0], np.cumsum(eos[:-1])]) if len(df) else np.zeros(0, np.int64)
        return df

    def word_tags(self, model_id: str) -> dict[str, str]:
        """word -> its most frequent gold universal POS tag (words without one are left out)."""
        tags = self.vocab(model_id).dropna(subset=["pos"])
        return dict(zip(tags["word"].astype(str), tags["pos"].astype(str), strict=True))

    def loss_comparison(self, a: str, b: str) -> LossComparison:
        """Where ``a`` beats ``b``: LossMismatchError when they cannot be compared, AnalysisMissingError
        when one has no token losses (analysed before they were stored)."""
        ma, mb = self.model(a), self.model(b)
        if ma["task"] != "lm" or mb["task"] != "lm":
            raise LossMismatchError("the loss comparison is for two language models; "
                                    f"{a if ma['task'] != 'lm' else b} is a classifier")
        for what in ("corpus", "analysis_split"):
            if ma[what] != mb[what]:
                raise LossMismatchError(f"{a} and {b} were analysed on different text ({what} {ma[what]!r} "
                                        f"against {mb[what]!r}): pick two models of the same corpus")
        ta, tb = self.token_losses(a), self.token_losses(b)
        key = ("loss_compare", a, ma["version"], b, mb["version"])
        return self._derived.get(key, lambda: compare_losses(ta, tb, self.word_tags(a)))

    def class_outcomes(self, model_id: str) -> dict[str, Any]:
        """{"metrics": class_metrics rows, "confusion": class_confusion rows} of a classifier."""
        v = self.version(model_id)
        if not self._has_table(model_id, "class_metrics"):
            raise AnalysisMissingError(model_id, "class metrics", self.model_ids())
        return self._small.get(("class_outcomes", model_id, v), lambda: {
            "metrics": self._q("SELECT label, n, accuracy, mean_p_true FROM class_metrics WHERE model_id = ? "
                               "ORDER BY label", [model_id]),
            "confusion": self._q("SELECT label, predicted, n FROM class_confusion WHERE model_id = ? "
                                 "ORDER BY label, predicted", [model_id])})

    def stored_ablations(self, model_id: str, layer: int, state: str, k: int, cluster: int) -> pd.DataFrame:
        """The ``ablations`` rows of unit cluster H``cluster`` at (layer, state, k), zero mode (empty if none)."""
        v = self.version(model_id)
        if not self._has_table(model_id, "ablations"):
            return pd.DataFrame()
        return self._small.get(("ablations", model_id, v, layer, state, k, cluster), lambda: self._q(
            "SELECT target_kind, target, measure, n, tokens, units, delta_mean, baseline_mean, baseline_std, z, p, "
            "baseline_sets, base_mean FROM ablations WHERE model_id = ? AND layer = ? AND state = ? AND k = ? "
            "AND cluster = ? AND mode = 'zero' AND requested_by IS NULL ORDER BY target_kind, target",
            [model_id, layer, state, k, cluster]))

    def requested_ablations(self, model_id: str, params: dict[str, Any], requested_by: str, n: int) -> pd.DataFrame:
        """The ``ablations`` rows an on-demand ablation job wrote: ``params`` its request (layer, state, units, k,
        modes, baseline_sets, seed), ``n`` the tokens it measured; its first mode (empty if none)."""
        v = self.version(model_id)
        if not self._has_table(model_id, "ablations"):
            return pd.DataFrame()
        args = [model_id, int(params["layer"]), str(params["state"]), ",".join(str(int(u)) for u in params["units"]),
                str(params["modes"][0]), requested_by, int(n), params.get("k"), int(params["baseline_sets"]),
                int(params["seed"])]
        return self._small.get(("requested_ablations", v, *map(str, args)), lambda: self._q(
            "SELECT target_kind, target, measure, n, tokens, units, delta_mean, baseline_mean, baseline_std, z, p, "
            "baseline_sets, base_mean FROM ablations WHERE model_id = ? AND layer = ? AND state = ? AND units = ? "
            "AND mode = ? AND requested_by = ? AND n = ? AND k IS NOT DISTINCT FROM ?::INTEGER AND baseline_sets = ? "
            "AND seed = ? ORDER BY target_kind, target", args))


    def probes(self, model_id: str) -> pd.DataFrame:
        """The model's ``probes`` rows by layer and state (empty if it has none: no gold tags, or analysed without)."""
        v = self.version(model_id)
        if not self._has_table(model_id, "probes"):
            return pd.DataFrame()
        return self._small.get(("probes", model_id, v), lambda: self._q(
            "SELECT layer, state, task, n_train, n_test, accuracy, majority, control_accuracy, untrained_accuracy, "
            "seed, params FROM probes WHERE model_id = ? ORDER BY layer, state", [model_id]))
