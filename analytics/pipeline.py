"""Run a trained model over a corpus split and write its tables into the store.

A language model's statistics are those of the split traced as one continuous
stream from zero state, in every layer, computed in parallel pieces that are
made exact: each piece ends up started from its predecessor's true end state
(see :mod:`analytics.lm_trace` and docs/exactness.md).

Classifiers restart from zero at every document, truncated at the ``max_len``
the model was trained with.

The quantiles come from a systematic sample of at most ``quantile_cap``
occurrences per word spread evenly over the text, ranked in text order (the
LM split as one stream; documents in order, then position), whatever order
the pieces are traced in: see :func:`analytics.quantiles.systematic_keep`.

Everything of one model goes into one store partition, written atomically.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from models.buffers import Workspace
from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint
from models.corpora import Corpus, load_corpus
from models.options import check as check_options
from models.options import option
from models.rnn import RecurrentModel
from models.runtime import torch_threads
from models.train import batchify, lm_stream

from . import store
from .analysis_kinds import AnalysisKind, Traced, analysis_kind
from .coclusters import cocluster_frame, cocluster_range, select_words
from .gradients import gradient_flow
from .projections import projection_frame
from .responses import ResponseAccumulator
from .tables import SUMMARY_BITS, model_tables, response_table, round_mantissa  # noqa: F401 (re-exported)
from .token_states import check_token_states, parse_token_states, write_corpus_tokens
from .unit_summaries import unit_frames

log = logging.getLogger(__name__)
CLUSTER_STATES = ("h", "c")
ProgressFn = Callable[[dict[str, Any]], None]


class AnalysisCancelled(RuntimeError):
    """Raised when ``should_stop`` says so; nothing is written."""


@dataclass
class AnalysisOptions:
    """How to analyse (each option declared with :func:`models.options.option`: range, choices, help)."""
    split: str = option("test", "split to trace", choices=("train", "valid", "test"))
    max_tokens: int = option(0, "analyse the first N tokens (0 = the whole split)", low=0)
    states: str = option("hidden", "'hidden' (h, and c for an LSTM), 'all' (with the gates) or a comma list, "
                         "e.g. h or h,gates")
    batch_size: int = option(64, "parallel streams (LM) or documents (classifier) per trace call", low=1,
                             offered=False)
    chunk_steps: int = option(256, "time steps per trace call (LM)", low=1, offered=False)
    # LM: tokens of text before each parallel piece read (from zero) to set its start in the first pass.  Only a
    # speed-up: the corrections of analytics/lm_trace.py then make every start exact, and a piece whose warmed-up
    # start already agrees with its predecessor's end needs none.  The demo LSTM's second layer and the demo GRU
    # keep a trace of a start for 500-1,600 tokens, so no warm-up length alone is exact (200: 16% of demo-lstm's
    # layer-1 (word, unit) pairs off by > 1e-4 + 1e-3|mean|); it costs ~12% more steps (states only) on Brown's
    # test split (64 pieces of 1,632 tokens).
    warmup: int = option(200, "LM: tokens read before each parallel piece to guess its start (made exact later)",
                         low=0, offered=False)
    top_words: int = option(500, "words in the co-clustering", low=1)
    min_count: int = option(10, "least occurrences to be co-clustered", low=1)
    k_min: int = option(2, "smallest number of clusters", low=2, high=50, offered=False)
    k_max: int = option(20, "largest number of clusters", low=2, high=50)
    quantile_cap: int = option(1000, "quantiles from a sample of this many occurrences of a word, evenly spread",
                               low=1, offered=False)
    gradient_k: int = option(50, "gradient-flow distances 1..K (0 = off)", low=0)
    seed: int = option(0, "random seed (co-clustering, projections, gradient flow)", low=0, offered=False)
    # float16, ~136 MB per 650 units over 104k tokens
    token_states: str = option("last", "per-token states stored for the pattern search (analytics/token_states.py): "
                               "'last' (the last layer's h), 'none', 'all' or layer:state pairs, e.g. 1:h,0:c")

    def validate(self) -> AnalysisOptions:
        if not 2 <= self.k_min <= self.k_max <= 50:
            raise ValueError(f"need 2 <= k_min <= k_max <= 50, got {self.k_min}..{self.k_max}")
        check_options(self)
        check_token_states(self.token_states)
        return self


@dataclass
class AnalysisResult:
    model_id: str
    tokens: int
    words: int
    states: list[tuple[int, str]]
    wall_s: float
    partition: Path


def _select_states(model: RecurrentModel, spec: str) -> list[tuple[int, str]]:
    """The (layer, state)s an analysis covers.

    The default, ``hidden``, is h (and c for an LSTM), what the store sizing
    counts (docs/architecture.md, "Store size"): the gates triple the rows (a 2x650 LSTM on Brown's test
    split: 273 MB with h, c; 723 MB with the gates), so they are asked for
    with ``all`` or ``gates``.
    """
    names = model.cfg.states
    if spec == "all":
        wanted = list(names)
    elif spec == "hidden":
        wanted = [s for s in names if s in ("h", "c")]
    else:
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        if "gates" in wanted:
            wanted = [s for s in wanted if s != "gates"] + [s for s in names if s not in ("h", "c")]
        bad = [s for s in wanted if s not in names]
        if bad or not wanted:
            raise ValueError(f"a {model.cfg.cell} model has states {', '.join(names)}; got {spec!r}")
    return [(layer, s) for layer in range(model.cfg.layers) for s in names if s in wanted]


def _projections(model_id: str, key: tuple[int, str], mean: np.ndarray, word_ids: np.ndarray,
                 seed: int) -> pd.DataFrame:
    """The 2-D maps (PCA, t-SNE) of the co-clustered words and of the units of one (layer, state)."""
    t0 = time.perf_counter()
    frame = projection_frame(mean, word_ids, seed=seed)
    frame.insert(0, "state", key[1])
    frame.insert(0, "layer", key[0])
    frame.insert(0, "model_id", model_id)
    log.debug("projections of %s L%d %s: %.2fs", model_id, key[0], key[1], time.perf_counter() - t0)
    return frame


def analyze_model(model_id: str, store_root: str | os.PathLike, opts: AnalysisOptions | None = None, *,
                  corpus: Corpus | None = None, device: torch.device | str = "cpu", show_progress: bool = True,
                  on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                  threads: int | None = None) -> AnalysisResult:
    """Trace ``model_id`` over a split, compute every table and publish the partition.

    ``threads`` sets torch's CPU threads (default: see :mod:`models.runtime`).
    """
    ckpt = read_checkpoint(find_checkpoint(store_root, model_id))
    with torch_threads(ckpt["model_config"]["hidden_size"], threads):
        return _analyze(model_id, store_root, opts, ckpt, corpus=corpus, device=device, show_progress=show_progress,
                        on_progress=on_progress, should_stop=should_stop)


def _cluster_frames(model_id: str, key: tuple[int, str], stats, opts: AnalysisOptions
                    ) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(co-clusters, projections) of one (layer, state), or None with fewer than two words to cluster."""
    rows = select_words(stats.n, opts.top_words, opts.min_count)
    if len(rows) < 2:
        return None
    found = cocluster_range(np.abs(stats.mean[rows]), range(opts.k_min, opts.k_max + 1), seed=opts.seed)
    frame = cocluster_frame(found, stats.word_ids[rows])
    frame.insert(0, "state", key[1])
    frame.insert(0, "layer", key[0])
    frame.insert(0, "model_id", model_id)
    return frame, _projections(model_id, key, stats.mean[rows], stats.word_ids[rows], opts.seed)


def _write_tables(w, model_id: str, model: RecurrentModel, vocab, corpus: Corpus, opts: AnalysisOptions, states,
                  acc: ResponseAccumulator, traced_by: tuple[AnalysisKind, Traced], show_progress: bool,
                  report: Callable[[str, float], None]) -> int:
    """Every table but the model's own rows into the partition writer ``w``; returns the words seen."""
    kind, traced = traced_by
    H, words = model.cfg.hidden_size, 0
    cluster_frames, projection_frames, summary_frames, tag_frames = [], [], [], []
    # In the store's order (layer, state name, word, unit), so the writer need not sort 17M+ rows.
    in_order = sorted(enumerate(states), key=lambda item: item[1])
    for n_done, (i, key) in enumerate(tqdm(in_order, desc=f"{model_id}: statistics", disable=not show_progress,
                                           leave=False)):
        stats = acc.stats(i * H, (i + 1) * H)
        words = max(words, len(stats.word_ids))
        for table in response_table(model_id, key[0], key[1], stats, vocab):
            w.write("word_responses", table, presorted=True)
        summary, tags = unit_frames(model_id, key[0], key[1], stats, vocab.words, vocab.pos)
        summary_frames.append(summary)
        tag_frames.append(tags)
        frames = _cluster_frames(model_id, key, stats, opts) if key[1] in CLUSTER_STATES else None
        if frames is not None:
            cluster_frames.append(frames[0])
            projection_frames.append(frames[1])
        report("statistics", 0.8 + 0.15 * (n_done + 1) / len(states))
    coclusters = pd.concat(cluster_frames, ignore_index=True) if cluster_frames else None
    if coclusters is not None:
        w.write("coclusters", coclusters)
    w.write("unit_summaries", pd.concat(summary_frames, ignore_index=True))
    if any(len(f) for f in tag_frames):
        w.write("unit_tags", pd.concat(tag_frames, ignore_index=True))
    write_corpus_tokens(w, model_id, traced.text_ids, vocab.words, traced.documents)
    if traced.contexts is not None:
        w.write("unit_contexts", traced.contexts.frame(model_id))
        traced.contexts = None
    if traced.collector is not None:
        traced.collector.write(w, model_id)
        traced.collector = None
    if projection_frames:
        w.write("projections", pd.concat(projection_frames, ignore_index=True))
    kind.write_outcomes(w, model_id, model, vocab, corpus, opts, traced, coclusters, report)
    if opts.gradient_k:
        stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
        streams = max(1, min(64, stream.numel() // (opts.gradient_k + 2)))    # windows of K+1 tokens
        gf = gradient_flow(model, batchify(stream, streams), opts.gradient_k, seed=opts.seed)
        gf.insert(0, "model_id", model_id)
        w.write("gradient_flow", gf)
    return words


def _analyze(model_id, store_root, opts, ckpt, *, corpus, device, show_progress, on_progress,
             should_stop) -> AnalysisResult:
    opts = (opts or AnalysisOptions()).validate()
    t_start = time.perf_counter()
    model, vocab = model_from_checkpoint(ckpt, device)
    states = _select_states(model, opts.states)
    if corpus is None:
        corpus = load_corpus(ckpt.get("train_config", {}).get("corpus") or ckpt["corpus"])
    spill = tempfile.mkdtemp(prefix=f"rnnvis-{model_id}-")
    # One accumulator for every selected (layer, state): state k in columns k*H .. (k+1)*H,
    # the layout of model.trace_packed.
    acc = ResponseAccumulator(len(vocab), len(states) * model.cfg.hidden_size, quantile_cap=opts.quantile_cap,
                              spill_dir=spill, device=model.head.weight.device)     # the sums stay where the trace is
    ws = Workspace(device)

    def report(stage: str, fraction: float) -> None:
        if on_progress is not None:
            on_progress({"stage": stage, "progress": round(fraction, 4)})
        if should_stop is not None and should_stop():
            raise AnalysisCancelled("analysis cancelled")

    token_keys = parse_token_states(opts.token_states, model.cfg.layers, states)
    kind = analysis_kind(model, ckpt)
    try:
        with tqdm(total=100, desc=f"{model_id}: trace", disable=not show_progress, leave=False) as bar:
            traced = kind.trace(model, vocab, corpus, opts, states, ws, acc, token_keys, bar, report)
        if traced.tokens == 0:
            raise ValueError(f"the {opts.split} split of {corpus.name!r} has no tokens to analyse")
        ws.clear()                     # the trace buffers (0.8 GB for a 2x650 LSTM, all states) are done
        model.clear_trace_cache()
        models_df, metrics_df, vocab_df = model_tables(model_id, ckpt, vocab, opts, traced.tokens, states)
        with store.write_partition(store_root, "models", model_id) as w:
            w.write("models", models_df)
            w.write("training_metrics", metrics_df)
            w.write("vocab", vocab_df)
            words = _write_tables(w, model_id, model, vocab, corpus, opts, states, acc, (kind, traced), show_progress,
                                  report)
            report("publish", 1.0)
    finally:
        acc.close()
        ws.clear()
        shutil.rmtree(spill, ignore_errors=True)
    wall = time.perf_counter() - t_start
    log.info("analysed %s: %d tokens, %d states in %.1fs", model_id, traced.tokens, len(states), wall)
    return AnalysisResult(model_id, traced.tokens, words, states, wall,
                          store.partition_path(store_root, "models", model_id))
