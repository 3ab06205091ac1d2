"""On-demand ablations: one unit set of a stored model, asked for by someone, added to its ``ablations`` rows.

:func:`ablate_stored` runs the request on the stored model (its analysed split, tags and co-clusters) and
:func:`add_requested` merges the rows into the model's partition: the partition is rewritten whole, every other
table carried over unchanged (hard links), so readers see the old rows or the new ones, never part of them.
The write is based on the partition's version: if an analysis replaced the partition meanwhile, nothing is
written and StoreError says so.  A request asked again by the same user (same units, mode, prefix, random sets
and seed) replaces its earlier rows; the analysis's own rows (``requested_by`` NULL) are never touched.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from models.runtime import torch_threads

from .. import store
from ..schema import KINDS
from .precompute import word_clusters
from .run import BASELINE_SETS, LMText, Tested, ablate
from .stored import StoredModel

__all__ = ["ablate_stored", "add_requested", "REQUEST_KEY", "DEFAULT_PREFIX"]

#: The columns that say which request a row answers (one user's same request replaces its earlier rows).
REQUEST_KEY = ("layer", "state", "k", "units", "mode", "n", "baseline_sets", "seed", "requested_by")
#: Tokens an on-demand ablation of a language model measures unless asked otherwise (docs/ablation.md, "Cost").
DEFAULT_PREFIX = 20_000


def ablate_stored(model_id: str, stored: StoredModel, layer: int, state: str, units: Sequence[int], *,
                  k: int | None, cluster: int | None = None, modes: Sequence[str] = ("zero",),
                  baseline_sets: int = BASELINE_SETS, seed: int = 0, prefix: int = DEFAULT_PREFIX,
                  requested_by: str, on_progress: Callable[[float], None] | None = None,
                  threads: int | None = None) -> pd.DataFrame:
    """``ablations`` rows of one unit set of a stored model.  ``k``: the co-clustering whose word clusters are
    targets (and whose unit cluster ``cluster`` the set is, if given); ``prefix`` as :func:`ablate`'s;
    ``threads``: torch's CPU threads (:func:`models.runtime.torch_threads`)."""
    data = stored.data
    if isinstance(data, LMText) and k is not None:
        data = LMText(data.stream, data.tags, word_clusters(stored.coclusters, layer, state, k))
    with torch_threads(stored.model.cfg.hidden_size, threads):
        return ablate(model_id, stored.model, data, layer, state, [Tested(tuple(units), k, cluster)], modes=modes,
                      baseline_sets=baseline_sets, seed=seed, prefix=prefix, requested_by=requested_by,
                      on_progress=on_progress)


def _same_request(old: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
    """Rows of ``old`` that answer one of the requests of ``new`` (same REQUEST_KEY; NULL k equal to NULL k)."""
    def keys(df: pd.DataFrame) -> list[tuple]:
        return [tuple(None if pd.isna(v) else str(v) for v in row) for row in df[list(REQUEST_KEY)].itertuples(False)]

    asked = set(keys(new))
    return old["requested_by"].notna() & pd.Series([k in asked for k in keys(old)], index=old.index, dtype=bool)


def add_requested(root: str | Path, model_id: str, rows: pd.DataFrame) -> int:
    """Add on-demand ``rows`` (``requested_by`` set) to the model's ``ablations``; returns the rows it now has."""
    if rows.empty or rows["requested_by"].isna().any():
        raise ValueError("on-demand ablation rows need requested_by")
    version = store.partition_version(root, "models", model_id)
    if version is None:
        raise store.UnknownModelError(model_id, store.list_partitions(root, "models"))
    if store.table_file(root, "models", model_id, "ablations") is None:
        old = rows.iloc[:0]
    else:
        with store.connect(root) as con:
            old = store.query(con, "SELECT * FROM ablations WHERE model_id = ?", [model_id])[rows.columns]
        old = old.astype(rows.dtypes.to_dict())
        old = old[~_same_request(old, rows)]
    merged = pd.concat([old, rows], ignore_index=True)
    with store.write_partition(root, "models", model_id, replaces=version) as w:
        for table in KINDS["models"].views:
            if table != "ablations":
                w.keep(table)
        w.write("ablations", merged)
    return len(merged)
