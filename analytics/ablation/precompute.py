"""The ablations an analysis stores: every unit cluster of the last layer's h (and c for an LSTM) at the
default k, each against its random sets, on a prefix of the analysed split.

Why a prefix: every tested set costs 1 + R runs of the last layer and of the output layer side by side, and
the output layer (H x vocabulary per token) dominates; the whole Brown test split would cost the 2x650 LSTM's
analysis many times over (docs/ablation.md, "Cost").  The prefix is set by a fixed amount of work
(:func:`precompute_tokens`), so a small model measures more of its split than a large one; ``n`` in every row
says how many tokens were measured.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.rnn import RecurrentModel

from .run import BASELINE_SETS, Documents, LMText, Tested, ablate

__all__ = ["DEFAULT_K", "PRECOMPUTE_WORK", "PRECOMPUTE_MODES", "precompute_tokens", "unit_clusters",
           "word_clusters", "write_ablations"]

#: The co-clustering the precomputed set tests: Explore's default k (app/urlstate.py's K_DEFAULT, which
#: analytics may not import).
DEFAULT_K = 6
PRECOMPUTE_MODES = ("zero",)
#: Multiply-adds the precomputed set may cost: about +30% of the 2x650 LSTM's analysis of Brown's test split on
#: the development machine (bench/bench_ablation.py --precompute), which buys that model ~350 tokens.
PRECOMPUTE_WORK = 7e11
#: What one step costs besides its products (a dozen small ops), in multiply-adds' time; the least tokens.
STEP_OVERHEAD, MIN_TOKENS = 2e7, 200


def precompute_tokens(model: RecurrentModel, columns: int) -> int:
    """Tokens the precomputed set measures for ``columns`` runs side by side of the last layer (and the output
    layer, for a language model): PRECOMPUTE_WORK over the work of one token, at least MIN_TOKENS."""
    cfg = model.cfg
    H = cfg.hidden_size
    per_column = {"lstm": 4, "gru": 3, "rnn": 1}[cfg.cell] * H * H + (H * cfg.vocab_size if cfg.task == "lm" else 0)
    return max(MIN_TOKENS, int(PRECOMPUTE_WORK / (columns * per_column + STEP_OVERHEAD)))


def _rows(coclusters: pd.DataFrame, layer: int, state: str, k: int, axis: str) -> pd.DataFrame:
    c = coclusters
    return c[(c["layer"] == layer) & (c["state"] == state) & (c["k"] == k) & (c["axis"] == axis)]


def unit_clusters(coclusters: pd.DataFrame, layer: int, state: str, k: int) -> dict[int, tuple[int, ...]]:
    """cluster -> its units (sorted), from ``coclusters`` rows (columns layer, state, k, axis, item, cluster)."""
    rows = _rows(coclusters, layer, state, k, "unit")
    return {int(c): tuple(sorted(int(u) for u in g["item"])) for c, g in rows.groupby("cluster")}


def word_clusters(coclusters: pd.DataFrame, layer: int, state: str, k: int) -> dict[int, int]:
    """word_id -> word cluster of the co-clustering of (layer, state) at k."""
    rows = _rows(coclusters, layer, state, k, "word")
    return dict(zip(rows["item"].astype(int), rows["cluster"].astype(int)))


def _first_documents(data: Documents, tokens: int) -> Documents:
    """The documents that start within the first ``tokens`` tokens (at least one)."""
    ends = np.cumsum([len(d) for d in data.docs])
    keep = max(1, int(np.searchsorted(ends, tokens, side="left")) + 1) if tokens else len(data.docs)
    return Documents(data.docs[:keep], data.labels[:keep], data.label_names)


def write_ablations(w, model_id: str, model: RecurrentModel, data: LMText | Documents, coclusters: pd.DataFrame,
                    *, k: int = DEFAULT_K, tokens: int | None = None, modes=PRECOMPUTE_MODES,
                    baseline_sets: int = BASELINE_SETS, seed: int = 0,
                    on_progress: Callable[[float], None] | None = None) -> int:
    """Ablate every unit cluster of the last layer's h (and c) at ``k`` and write the rows into partition
    writer ``w`` as ``ablations``.  ``coclusters``: the model's ``coclusters`` rows; ``tokens``: the prefix
    (None: :func:`precompute_tokens`; 0: the whole split).  Returns the rows written (none when the model has no
    co-clusters at k)."""
    layer = model.cfg.layers - 1
    H = model.cfg.hidden_size
    jobs = [(s, [Tested(u, k, c) for c, u in unit_clusters(coclusters, layer, s, k).items() if 0 < len(u) < H])
            for s in ("h", "c") if s in model.cfg.states]
    jobs = [(s, tested) for s, tested in jobs if tested]
    if tokens is None:
        tokens = precompute_tokens(model, sum(1 + len(modes) * len(t) * (1 + baseline_sets) for _, t in jobs))
    frames = []
    for i, (state, tested) in enumerate(jobs):
        if isinstance(data, LMText):
            part = LMText(data.stream[:tokens] if tokens else data.stream, data.tags,
                          word_clusters(coclusters, layer, state, k))
        else:
            part = _first_documents(data, tokens)

        def progress(f: float, i: int = i) -> None:
            if on_progress is not None:
                on_progress((i + f) / len(jobs))

        frames.append(ablate(model_id, model, part, layer, state, tested, modes=modes, baseline_sets=baseline_sets,
                             seed=seed, on_progress=progress))
    if not frames:
        return 0
    out = pd.concat(frames, ignore_index=True)
    w.write("ablations", out)
    return len(out)
