"""The result of the response statistics: per-word, per-unit summaries of one (layer, state).

:class:`analytics.responses.ResponseAccumulator` produces :class:`ResponseStats`;
see that module for how each statistic is computed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)
QUANTILE_COLUMNS: tuple[str, ...] = ("q10", "q25", "q50", "q75", "q90")


@dataclass
class ResponseStats:
    """Per-word, per-unit response statistics of one (layer, state).

    Attributes:
        word_ids: [W] int64, sorted; only words with n >= 1.
        n: [W] int64 occurrences.
        mean: [W, H] float32.
        std: [W, H] float32 sample std (ddof=1), 0 where n == 1.
        quantiles: [5, W, H] float32, in the order of ``QUANTILES``; NaN for a
            word none of whose occurrences a caller's ``keep`` mask kept.
    """

    word_ids: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray

    @property
    def hidden_size(self) -> int:
        return int(self.mean.shape[1])

    def to_frame(self, words: Sequence[str] | None = None) -> pd.DataFrame:
        """Long format, one row per (word, unit), ordered by (word_id, unit).

        Columns: word_id, [word], unit, n, mean, std, q10, q25, q50, q75, q90;
        int32 for word_id/unit/n, float32 for the statistics. ``words`` is the
        vocabulary (``words[word_id]``); the column is left out when None.
        """
        n_words, hidden = self.mean.shape
        cols: dict[str, np.ndarray] = {
            "word_id": np.repeat(self.word_ids.astype(np.int32), hidden),
        }
        if words is not None:
            if len(self.word_ids) and len(words) <= int(self.word_ids.max()):
                raise ValueError(
                    f"words has {len(words)} entries but word id {int(self.word_ids.max())} "
                    "was seen; pass the model's full vocabulary"
                )
            vocab = np.asarray(words, dtype=object)
            cols["word"] = np.repeat(vocab[self.word_ids], hidden)
        cols["unit"] = np.tile(np.arange(hidden, dtype=np.int32), n_words)
        cols["n"] = np.repeat(self.n.astype(np.int32), hidden)
        cols["mean"] = self.mean.astype(np.float32, copy=False).reshape(-1)
        cols["std"] = self.std.astype(np.float32, copy=False).reshape(-1)
        for i, name in enumerate(QUANTILE_COLUMNS):
            cols[name] = self.quantiles[i].astype(np.float32, copy=False).reshape(-1)
        return pd.DataFrame(cols)


def response_matrix(stats: ResponseStats) -> np.ndarray:
    """Expected response s(w)_u = E[value | word w]: the [W, H] mean matrix."""
    return stats.mean


def z_scores(stats: ResponseStats) -> np.ndarray:
    """[W, H] float32 z-score mean / (std / sqrt(n)); NaN where std == 0."""
    se = stats.std.astype(np.float64) / np.sqrt(stats.n.astype(np.float64))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, stats.mean / se, np.nan)
    return z.astype(np.float32)
