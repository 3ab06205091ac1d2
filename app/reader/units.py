"""The reader's unit pages: one unit's summary, top contexts, tag means, response distribution and ablation,
and the "Find units" ranking over a model's units.

A part of :class:`app.reader.Reader`, on :class:`app.reader.base.ReaderBase`. Everything comes from the
tables the analysis wrote (``unit_summaries``, ``unit_tags``, ``unit_contexts``, ``corpus_tokens``,
``word_responses``, ``ablations``), so a page is a few indexed queries.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analytics.response_stats import QUANTILE_COLUMNS
from app.reader.base import ReaderBase

CONTEXT = 8                      # tokens shown either side of a top context
FIND_LIMIT = 25                  # units listed by Find units
FIND_MODES = ("word", "tag", "text")


class UnitsMixin(ReaderBase):
    """One unit's page and the search over units of :class:`app.reader.Reader`."""

    def unit_summary(self, model_id: str, layer: int, state: str, unit: int) -> dict[str, Any] | None:
        """The unit's ``unit_summaries`` row as a dict, or None (an analysis from before the table)."""
        v = self.version(model_id)
        df = self._small.get(("usum", model_id, v, layer, state, unit), lambda: self._q(
            "SELECT * FROM unit_summaries WHERE model_id = ? AND layer = ? AND state = ? AND unit = ?",
            [model_id, layer, state, unit]))
        return None if df.empty else df.iloc[0].to_dict()

    def unit_contexts(self, model_id: str, layer: int, state: str, unit: int) -> pd.DataFrame:
        """kind, rank, position, value of the unit's top contexts, with ``tokens``: the words at
        position − CONTEXT .. position + CONTEXT of the same document, as a list of (offset, word)."""
        v = self.version(model_id)

        def read() -> pd.DataFrame:
            top = self._q("SELECT kind, rank, position, value FROM unit_contexts WHERE model_id = ? AND layer = ? "
                          "AND state = ? AND unit = ? ORDER BY kind, rank", [model_id, layer, state, unit])
            if top.empty:
                return top.assign(tokens=[])
            centers = top["position"].to_numpy(np.int64)
            wanted = np.unique((centers[:, None] + np.arange(-CONTEXT, CONTEXT + 1)[None, :]).ravel())
            wanted = wanted[wanted >= 0]
            near = self._q("SELECT position, document, word FROM corpus_tokens WHERE model_id = ? AND position "
                           "BETWEEN ? AND ? AND list_contains(?, position)",
                           [model_id, int(wanted.min()), int(wanted.max()), wanted.tolist()]).set_index("position")
            groups = {}
            for c in np.unique(centers):
                if c not in near.index:
                    continue
                window = near.loc[max(0, c - CONTEXT):c + CONTEXT]
                window = window[window["document"] == near.at[c, "document"]]
                groups[int(c)] = list(zip((window.index - c).astype(int), window["word"].astype(str)))
            top["tokens"] = [groups.get(int(p), []) for p in top["position"]]
            return top
        return self._small.get(("uctx", model_id, v, layer, state, unit), read)

    def unit_tags(self, model_id: str, layer: int, state: str, unit: int) -> pd.DataFrame:
        """tag, n, mean, std, z of the unit per gold POS tag (empty without tags)."""
        v = self.version(model_id)
        return self._small.get(("utags", model_id, v, layer, state, unit), lambda: self._q(
            "SELECT tag, n, mean, std, z FROM unit_tags WHERE model_id = ? AND layer = ? AND state = ? "
            "AND unit = ? ORDER BY tag", [model_id, layer, state, unit]))

    def unit_distribution(self, model_id: str, layer: int, state: str, unit: int) -> pd.DataFrame:
        """n and the five stored quantiles of the unit's response to every word (the histogram's input)."""
        v = self.version(model_id)
        cols = ", ".join(QUANTILE_COLUMNS)
        return self._small.get(("udist", model_id, v, layer, state, unit), lambda: self._q(
            f"SELECT n, {cols} FROM word_responses WHERE model_id = ? AND layer = ? AND state = ? AND unit = ?",
            [model_id, layer, state, unit]))

    def unit_ablations(self, model_id: str, layer: int, state: str, unit: int) -> pd.DataFrame:
        """The stored ablations of a unit set holding this unit (target 'all'): k, cluster, size, mode,
        delta_mean, baseline_mean, baseline_std, z, p, measure."""
        v = self.version(model_id)
        if not self._has_table(model_id, "ablations"):
            return pd.DataFrame()
        return self._small.get(("uabl", model_id, v, layer, state, unit), lambda: self._q(
            "SELECT k, cluster, len(string_split(units, ',')) AS size, mode, delta_mean, baseline_mean, "
            "baseline_std, z, p, measure FROM ablations WHERE model_id = ? AND layer = ? AND state = ? "
            "AND target_kind = 'all' AND list_contains(string_split(units, ','), ?) ORDER BY k, mode",
            [model_id, layer, state, str(unit)]))

    def find_units(self, model_id: str, mode: str, text: str, limit: int = FIND_LIMIT) -> pd.DataFrame:
        """A model's units (every layer and state) ranked by a word's response s(w) (``word``), by the
        selectivity z of a gold POS tag (``tag``), or those whose description mentions ``text`` (``text``,
        ranked by their top tag's z).  Columns layer, state, unit, score, description."""
        if mode not in FIND_MODES:
            raise ValueError(f"find by {mode!r}? use one of {', '.join(FIND_MODES)}")
        text = text.strip()
        v = self.version(model_id)
        return self._small.get(("find", model_id, v, mode, text, limit), lambda: self._find(model_id, mode, text,
                                                                                               limit))

    def _find(self, model_id: str, mode: str, text: str, limit: int) -> pd.DataFrame:
        join = ("JOIN unit_summaries s ON s.model_id = x.model_id AND s.layer = x.layer AND s.state = x.state "
                "AND s.unit = x.unit")
        if mode == "word":
            wid = self._word_id(model_id, text)
            if wid is None:
                return pd.DataFrame(columns=["layer", "state", "unit", "score", "description"])
            return self._q(
                f"SELECT x.layer, x.state, x.unit, x.mean AS score, s.description FROM word_responses x {join} "
                "WHERE x.model_id = ? AND x.word_id = ? ORDER BY x.mean DESC, x.layer, x.state, x.unit LIMIT ?",
                [model_id, wid, limit])
        if mode == "tag":
            return self._q(
                f"SELECT x.layer, x.state, x.unit, x.z AS score, s.description FROM unit_tags x {join} "
                "WHERE x.model_id = ? AND upper(x.tag) = upper(?) AND x.z IS NOT NULL "
                "ORDER BY x.z DESC, x.layer, x.state, x.unit LIMIT ?", [model_id, text, limit])
        return self._q(
            "SELECT layer, state, unit, top_tag_z AS score, description FROM unit_summaries WHERE model_id = ? "
            "AND contains(lower(description), lower(?)) ORDER BY top_tag_z DESC NULLS LAST, layer, state, unit "
            "LIMIT ?", [model_id, text, limit])

    def _word_id(self, model_id: str, word: str) -> int | None:
        voc = self.vocab(model_id)
        hit = voc.index[voc["word"].astype(str) == word]
        if not len(hit):
            hit = voc.index[voc["word"].astype(str).str.lower() == word.lower()]
        return int(hit[0]) if len(hit) else None


def histogram(dist: pd.DataFrame, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(edges [bins+1], counts [bins]) of the unit's response, approximated from each word's stored quantiles:
    each of q10, q25, q50, q75, q90 stands for a fifth of the word's n occurrences (a word's tails beyond its
    q10 and q90 are drawn at them)."""
    if dist.empty:
        return np.zeros(bins + 1), np.zeros(bins)
    q = dist[list(QUANTILE_COLUMNS)].to_numpy(float)                       # [W, 5]
    w = np.repeat(dist["n"].to_numpy(float)[:, None] / q.shape[1], q.shape[1], axis=1)
    ok = np.isfinite(q)
    counts, edges = np.histogram(q[ok], bins=bins, weights=w[ok])
    return edges, counts
