"""Ablate unit sets of one (layer, state) against random sets, and return ``ablations`` rows.

:func:`ablate` checks the request, builds the columns (the unablated run, then every tested set and every
random set in every mode, each distinct set once), runs them side by side (:mod:`.engine`) and measures
the effects (:mod:`.effects`).  :func:`write_ablations` is the analysis's precomputed set.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from models.rnn import RecurrentModel

from .effects import classifier_effects, lm_effects, random_sets
from .engine import Columns, classifier_column_probs, lm_column_losses, state_means

__all__ = ["LMText", "Documents", "Tested", "ablate", "ABLATION_COLUMNS", "MODES", "BASELINE_SETS", "MAX_SETS",
           "MAX_COLUMNS"]

MODES = ("zero", "mean")
#: Random sets per tested set (the issue's default), and the most a request may ask for.
BASELINE_SETS, MAX_SETS = 20, 200
#: Columns traced side by side at most (each holds its own state and output rows).
MAX_COLUMNS = 1024
ABLATION_COLUMNS = ["model_id", "layer", "state", "k", "cluster", "units", "mode", "target_kind", "target", "n",
                    "delta_mean", "baseline_mean", "baseline_std", "z", "p", "measure", "tokens", "base_mean",
                    "baseline_sets", "seed", "requested_by"]


@dataclass(frozen=True)
class LMText:
    """A language model's analysed split as one stream (cut to its first ``n`` tokens by the caller or by
    ``prefix``), each word's POS tag (by word id; None unknown) and, optionally, each word's cluster."""

    stream: torch.Tensor
    tags: Sequence[str | None]
    word_clusters: dict[int, int] | None = None


@dataclass(frozen=True)
class Documents:
    """A classifier's analysed documents (token ids, each read from zero state), their labels and label names."""

    docs: Sequence[Sequence[int]]
    labels: Sequence[int]
    label_names: Sequence[str]


@dataclass(frozen=True)
class Tested:
    """A unit set to test: its units, and the co-cluster it is (k, cluster), if it is one."""

    units: tuple[int, ...]
    k: int | None = None
    cluster: int | None = None


def _check(model: RecurrentModel, layer: int, state: str, tested: Sequence[Tested], modes: Sequence[str],
           baseline_sets: int) -> None:
    """Every bound of a request, checked before any work; ValueError saying what to change otherwise."""
    cfg = model.cfg
    if not 0 <= layer < cfg.layers:
        raise ValueError(f"layer must be 0 .. {cfg.layers - 1} for this model, got {layer}")
    if state not in ("h", "c") or (state == "c" and cfg.cell != "lstm"):
        raise ValueError(f"state must be 'h'{' or c' if cfg.cell == 'lstm' else ''} for a {cfg.cell}, got {state!r}")
    if not tested:
        raise ValueError("give at least one unit set to test")
    for t in tested:
        u = np.asarray(t.units)
        if u.size == 0 or u.size >= cfg.hidden_size or len(set(u.tolist())) != u.size:
            raise ValueError(f"a unit set needs 1 .. {cfg.hidden_size - 1} distinct units, got {u.size}")
        if u.min() < 0 or u.max() >= cfg.hidden_size:
            raise ValueError(f"units must lie in 0 .. {cfg.hidden_size - 1}, got {int(u.min())} .. {int(u.max())}")
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"modes must be some of {', '.join(MODES)}, got {list(modes)}")
    if not 2 <= baseline_sets <= MAX_SETS:
        raise ValueError(f"baseline_sets must be 2 .. {MAX_SETS}, got {baseline_sets}")
    columns = 1 + len(modes) * len(tested) * (1 + baseline_sets)
    if columns > MAX_COLUMNS:
        raise ValueError(f"{columns} runs side by side is more than {MAX_COLUMNS}: test fewer sets or modes at once")


def _plan(tested: Sequence[Tested], modes: Sequence[str], hidden: int, baseline_sets: int, seed: int
          ) -> tuple[list[tuple[str, tuple[int, ...]]], list[tuple[Tested, str, int, list[int]]]]:
    """The columns (mode, units) after column 0, each distinct one once; and per (tested set, mode) its column
    and its random sets' columns."""
    columns: dict[tuple[str, tuple[int, ...]], int] = {}

    def column(mode: str, units: tuple[int, ...]) -> int:
        return columns.setdefault((mode, units), len(columns) + 1)

    plan = []
    for t in tested:
        units = tuple(sorted(int(u) for u in t.units))
        randoms = [tuple(int(u) for u in r) for r in random_sets(hidden, len(units), baseline_sets, seed)]
        for mode in modes:
            plan.append((t, mode, column(mode, units), [column(mode, r) for r in randoms]))
    return list(columns), plan


def _measured(model: RecurrentModel, data: LMText | Documents, prefix: int) -> LMText | Documents:
    """The data the ablation measures (a language model's stream cut to ``prefix`` tokens), checked."""
    lm = isinstance(data, LMText)
    if lm != (model.cfg.task == "lm"):
        raise ValueError("a language model needs LMText, a classifier Documents")
    if prefix < 0 or prefix == 1:
        raise ValueError(f"prefix must be 0 (the whole split) or at least 2 tokens, got {prefix}")
    if not lm:
        if not data.docs:
            raise ValueError("there are no documents to classify")
        return data
    if data.stream.numel() < 2:
        raise ValueError("the stream needs at least 2 tokens (one prediction)")
    return LMText(data.stream[:prefix] if prefix else data.stream, data.tags, data.word_clusters)


def ablate(model_id: str, model: RecurrentModel, data: LMText | Documents, layer: int, state: str,
           tested: Sequence[Tested], *, modes: Sequence[str] = MODES, baseline_sets: int = BASELINE_SETS,
           seed: int = 0, prefix: int = 0, requested_by: str | None = None,
           on_progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """``ablations`` rows for every tested set in every mode (see :mod:`analytics.ablation`).

    ``prefix`` (language models): measure on the first ``prefix`` tokens of the stream only (0: all of it).
    """
    _check(model, layer, state, tested, modes, baseline_sets)
    data = _measured(model, data, prefix)
    lm = isinstance(data, LMText)
    H = model.cfg.hidden_size
    spec, plan = _plan(tested, modes, H, baseline_sets, seed)
    means = (state_means(model, layer, state, stream=data.stream if lm else None, docs=None if lm else data.docs)
             if "mean" in modes else None)
    cols = Columns.build(layer, state, H, [u for _, u in spec], [means if m == "mean" else None for m, _ in spec])
    if lm:
        losses = lm_column_losses(model, data.stream, cols, on_progress=on_progress)
        targets, n = data.stream[1:].numpy(), int(data.stream.numel())
    else:
        probs, n = classifier_column_probs(model, data.docs, cols), len(data.docs)
    frames = []
    for t, mode, col, randoms in plan:
        eff = (lm_effects(losses, targets, data.tags, data.word_clusters or {}, col, randoms) if lm
               else classifier_effects(probs, data.labels, data.label_names, col, randoms))
        frames.append(eff.assign(model_id=model_id, layer=layer, state=state, k=t.k, cluster=t.cluster,
                                 units=",".join(str(u) for u in sorted(int(u) for u in t.units)), mode=mode, n=n,
                                 baseline_sets=baseline_sets, seed=seed, requested_by=requested_by))
    out = pd.concat(frames, ignore_index=True)[ABLATION_COLUMNS]
    return out.astype({"k": "Int32", "cluster": "Int32", "requested_by": "object"})
