"""POS probes: what a layer's states encode of each token's gold part of speech, against controls.

For a language model whose corpus has gold tags (Brown), every analysed (layer, h|c) gets a linear probe
(:mod:`.fit`) trained on the states the analysis traces (the split as one continuous stream), on a seeded
sample of whole sentences split by sentence (:mod:`.sample`), with three references: the majority tag, a
control task and the same architecture untrained (:mod:`.untrained`).  Written as ``probes`` and
``probe_units`` (analytics/schema/probes.py); docs/probes.md explains the numbers.

- :func:`plan` (before the trace): the sample and the collector that keeps its states from the trace;
- :func:`write_probes` (after it): fit the probes, write the rows.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from models.corpora import Corpus
from models.rnn import RecurrentModel

from ..token_states import TokenStateCollector
from .fit import PROBE, TASK, TOP_TAGS, control_tags, fit_probe, probe_rows
from .sample import BLOCK, TRAIN_SHARE, ProbeSample, probe_sample, sentence_ids
from .untrained import untrained_model, untrained_states

__all__ = ["ProbePlan", "plan", "write_probes", "probe_keys", "fit_probe", "control_tags", "probe_sample",
           "sentence_ids", "ProbeSample", "TASK", "TOP_TAGS", "PROBE", "BLOCK", "TRAIN_SHARE", "untrained_model"]

log = logging.getLogger(__name__)

@dataclass
class ProbePlan:
    """The sample, and the collector that keeps the trained model's states at its positions."""

    sample: ProbeSample
    keys: list[tuple[int, str]]
    collector: TokenStateCollector


def probe_keys(states: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The analysed (layer, state)s that get a probe: h and c."""
    return [k for k in states if k[1] in ("h", "c")]


def plan(corpus: Corpus, split: str, stream: torch.Tensor, states: list[tuple[int, str]], hidden: int,
         budget: int, seed: int) -> ProbePlan | None:
    """The probes of a traced stream [N], or None (no gold tags, probes off, too little text)."""
    keys = probe_keys(states)
    tags = corpus.tag_stream(split)[: stream.numel()]
    if not budget or not keys or len(tags) < stream.numel():
        return None
    lengths = [len(s) for s in corpus.splits[split]]
    sample = probe_sample(tags, stream.numpy(), sentence_ids(lengths, stream.numel()), budget, seed)
    if sample is None or len(sample.tag_names) < 2:
        return None
    collector = TokenStateCollector(keys, states, hidden, stream.numel(), positions=sample.positions)
    return ProbePlan(sample, keys, collector)


def _params(p: ProbePlan, warmup: int, budget: int) -> dict[str, Any]:
    s = p.sample
    return {**PROBE, "sample_budget": budget, "subsampled": s.subsampled, "sampled_tokens": int(len(s.positions)),
            "tagged_tokens": s.tagged_tokens, "block_tokens": BLOCK, "blocks": int(len(s.blocks)),
            "train_share": TRAIN_SHARE, "split_by": "sentence", "tags": s.tag_names,
            "control": "word id -> tag drawn from the sample's tag distribution",
            "untrained": "training's seed and init; each block read after the analysis' warm-up",
            "untrained_warmup": warmup}


def write_probes(w, model_id: str, model: RecurrentModel, train_config: dict[str, Any], stream: torch.Tensor,
                 p: ProbePlan, opts, report: Callable[[float], None]) -> int:
    """Fit every (layer, state)'s probe and its controls; write ``probes`` and ``probe_units``; returns rows."""
    t0 = time.perf_counter()
    fresh = untrained_states(untrained_model(model, train_config), stream, p.sample, p.keys, opts.warmup)
    params = _params(p, opts.warmup, opts.probe_tokens)
    rows, units = [], []
    for j, key in enumerate(p.keys):
        row, unit_rows = probe_rows(key, p.collector.out[j].numpy(), fresh[j].numpy(), p.sample, opts.seed, params)
        rows.append(row)
        units.append(unit_rows)
        report((j + 1) / len(p.keys))
    frame = pd.DataFrame(rows)
    frame.insert(0, "model_id", model_id)
    w.write("probes", frame)
    unit_frame = pd.concat(units, ignore_index=True)
    unit_frame.insert(0, "model_id", model_id)
    w.write("probe_units", unit_frame)
    log.debug("probes of %s: %d keys, %d tokens in %.1fs", model_id, len(p.keys), len(p.sample.positions),
              time.perf_counter() - t0)
    return len(rows)
