"""Run a trained model over a corpus split and write its tables into the store.

A language model's statistics are those of the split traced as one continuous
stream from zero state, computed in parallel: the split is cut into up to
``batch_size`` pieces of at least ``warmup`` tokens, traced side by side.
Piece 0 starts from zero state at the split's start, exactly as the stream
does; every other piece starts from the state reached by reading, from zero,
the ``warmup`` tokens of text just before it (one extra batched trace of
[warmup, B], no statistics), which is the continuous stream's state there up
to a difference that fades with the warm-up length (see ``AnalysisOptions``).
The tail that does not fill a piece is traced as the continuation of the last
piece, whose final state is exactly the state before it: every token counts.

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
from collections.abc import Callable, Iterator
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
from models.rnn import RecurrentModel, State
from models.runtime import torch_threads
from models.train import batchify, lm_stream

from . import store
from .coclusters import cocluster_frame, cocluster_range, select_words
from .gradients import gradient_flow
from .losses import write_class_outcomes, write_lm_losses
from .projections import projection_frame
from .quantiles import systematic_keep
from .responses import ResponseAccumulator
from .tables import SUMMARY_BITS, model_tables, response_table, round_mantissa  # noqa: F401 (re-exported)
from .token_states import TokenStateCollector, check_token_states, parse_token_states

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
    # LM: tokens of text before each parallel piece read (from zero) to set its start state.  Measured
    # against one continuous stream: the demo LSTMs and RNN forget a cold start within 25-100 tokens
    # (s(w) exact from warmup 50 on; 25 left 3% of pairs off by >10%); the demo GRU, with a unit near
    # integration, has 1.7% off at 100, 0.85% at 200, 0.22% at 400, 0.01% at 800.  200 costs ~12% more
    # trace steps on Brown's test split (64 pieces of 1,630 tokens).
    warmup: int = option(200, "LM: tokens read before each parallel piece to set its start state", low=0,
                         offered=False)
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


def _use_input_table(model: RecurrentModel, tokens: int) -> bool:
    """Look the first layer's input projections up per word (see RecurrentModel.trace_packed)?

    Yes when the trace covers more tokens than the vocabulary has words, so the
    [V, G*H] table costs less than the per-chunk products, and it fits in 1 GiB.
    """
    cfg = model.cfg
    gates = {"lstm": 4, "gru": 3}.get(cfg.cell, 0)
    return bool(gates) and tokens >= cfg.vocab_size and cfg.vocab_size * gates * cfg.hidden_size * 4 <= 1 << 30


def _lm_chunks(model: RecurrentModel, data: torch.Tensor, chunk: int, keys: list[tuple[int, str]],
               ws: Workspace, state: State | None = None,
               input_table: bool | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Trace a batchified stream [N, B] chunk by chunk from ``state`` (zero if None), carrying the state.

    Yields (ids [T, B], values [T, B, len(keys) * H]) with Δh for h and c, the
    activations for gates; ``values`` is reused by the next chunk.  Returns
    (as the generator's value) the state after the last step.
    """
    table = _use_input_table(model, data.numel()) if input_table is None else input_table
    for i in range(0, data.size(0), chunk):
        x = data[i:i + chunk]
        packed = model.trace_packed(x, state, keys=keys, deltas=True, workspace=ws, input_table=table)
        yield x, packed.values
        state = packed.state
    return state


def _pieces(total: int, batch_size: int, warmup: int) -> tuple[int, int]:
    """(B, n): B parallel pieces of n tokens each, n >= max(2, warmup) unless B == 1.

    Pieces at least ``warmup`` long let every piece but the first be warmed up
    on ``warmup`` tokens of the text before it; the B * n tokens traced in
    parallel leave a tail of total − B·n < B tokens.
    """
    B = max(1, min(batch_size, total // max(2, warmup)))
    return B, total // B


def _warm_state(model: RecurrentModel, stream: torch.Tensor, B: int, n: int, warmup: int,
                ws: Workspace, table: bool) -> State | None:
    """The start state of each piece b (tokens b·n ..): zero for piece 0, else the state after
    reading stream[b·n − warmup : b·n] from zero.  None (zero for all) when there is nothing to warm."""
    w = min(warmup, n)
    if B == 1 or w == 0:
        return None
    pos = torch.arange(B) * n                                               # [B] piece starts
    idx = (pos[None, :] - w + torch.arange(w)[:, None]).clamp_(min=0)     # [w, B]; piece 0's is reset below
    keys = [(model.cfg.layers - 1, "h")]                                    # only the final state is needed
    state = model.trace_packed(stream[idx], keys=keys, workspace=ws, input_table=table).state
    for s in state if isinstance(state, tuple) else (state,):
        s[:, 0] = 0                                                         # [L, B, H]: piece 0 from zero
    return state


def _last_column(state: State) -> State:
    """The state of the last piece only, batch of 1."""
    return tuple(s[:, -1:].contiguous() for s in state) if isinstance(state, tuple) else state[:, -1:].contiguous()


def _trace_lm(model: RecurrentModel, stream: torch.Tensor, opts: AnalysisOptions, keys: list[tuple[int, str]],
              ws: Workspace, acc: ResponseAccumulator, progress: Callable[[float], None],
              collector: TokenStateCollector | None = None) -> int:
    """Trace the id stream [N] as one continuous text (see the module docstring); returns the tokens counted."""
    total = stream.numel()
    if total == 0:
        return 0
    keep = torch.from_numpy(systematic_keep(stream.numpy(), opts.quantile_cap))    # [N] bool, text order
    B, n = _pieces(total, opts.batch_size, opts.warmup)
    data = stream[:B * n].view(B, n).t().contiguous()                       # [n, B]: column b = piece b
    keep_data = keep[:B * n].view(B, n).t()                                 # [n, B]
    table = _use_input_table(model, total + (B - 1) * min(opts.warmup, n))
    state = _warm_state(model, stream, B, n, opts.warmup, ws, table)
    if collector is not None:
        collector.begin(state, B, n)
    chunks, done, tokens = _lm_chunks(model, data, opts.chunk_steps, keys, ws, state, table), 0, 0
    while True:
        try:
            x, values = next(chunks)
        except StopIteration as stop:
            state = stop.value
            break
        acc.update(x.reshape(-1), values.view(-1, values.shape[-1]), keep=keep_data[done:done + len(x)].reshape(-1))
        if collector is not None:
            collector.add(values, done)
        done += len(x)
        tokens += x.numel()
        progress(done / n)
    if B * n < total:                                                       # the tail continues the last piece
        x = stream[B * n:, None]                                            # [r, 1]
        values = model.trace_packed(x, _last_column(state), keys=keys, deltas=True, workspace=ws,
                                    input_table=table).values
        acc.update(x.reshape(-1), values.view(-1, values.shape[-1]), keep=keep[B * n:])
        if collector is not None:
            collector.add_tail(values, B * n)
        tokens += x.numel()
    log.debug("traced %d tokens as %d pieces of %d (+%d tail), warm-up %d", tokens, B, n, total - B * n,
              min(opts.warmup, n) if B > 1 else 0)
    return tokens


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


def _analyze(model_id, store_root, opts, ckpt, *, corpus, device, show_progress, on_progress,
             should_stop) -> AnalysisResult:
    opts = (opts or AnalysisOptions()).validate()
    t_start = time.perf_counter()
    model, vocab = model_from_checkpoint(ckpt, device)
    states = _select_states(model, opts.states)
    if corpus is None:
        corpus = load_corpus(ckpt.get("train_config", {}).get("corpus") or ckpt["corpus"])
    H = model.cfg.hidden_size
    spill = tempfile.mkdtemp(prefix=f"rnnvis-{model_id}-")
    # One accumulator for every selected (layer, state): state k in columns k*H .. (k+1)*H,
    # the layout of model.trace_packed.
    acc = ResponseAccumulator(len(vocab), len(states) * H, quantile_cap=opts.quantile_cap, spill_dir=spill,
                              device=model.head.weight.device)     # the sums stay where the trace is
    ws = Workspace(device)

    def report(stage: str, fraction: float) -> None:
        if on_progress is not None:
            on_progress({"stage": stage, "progress": round(fraction, 4)})
        if should_stop is not None and should_stop():
            raise AnalysisCancelled("analysis cancelled")

    tokens = words = 0
    collector = text_ids = documents = None
    token_keys = parse_token_states(opts.token_states, model.cfg.layers, states)
    try:
        if model.cfg.task == "lm":
            stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
            if token_keys and stream.numel():
                collector = TokenStateCollector(token_keys, states, H, stream.numel())
                text_ids = stream.numpy()
            with tqdm(total=100, desc=f"{model_id}: trace", unit="%", disable=not show_progress,
                      leave=False) as bar:
                def progress(fraction: float) -> None:
                    bar.update(int(100 * fraction) - bar.n)
                    report("trace", 0.8 * fraction)

                tokens = _trace_lm(model, stream, opts, states, ws, acc, progress, collector)
        else:
            max_len = int(ckpt.get("train_config", {}).get("max_len") or 0)    # as trained (the loader keeps 400)
            docs = [vocab.encode(d) for d in corpus.splits[opts.split]]
            if max_len:
                docs = [d[:max_len] for d in docs]
            if opts.max_tokens:
                cum = np.cumsum([len(d) for d in docs])
                docs = docs[: max(1, int(np.searchsorted(cum, opts.max_tokens)) + 1)]
            # The quantile sample in text order: documents in order, then position.
            flat_keep = systematic_keep(np.concatenate([np.asarray(d, np.int64) for d in docs] or [np.zeros(0)]),
                                        opts.quantile_cap)
            doc_keep = np.split(flat_keep, np.cumsum([len(d) for d in docs])[:-1]) if docs else []
            order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
            groups = [order[i:i + opts.batch_size] for i in range(0, len(order), opts.batch_size)]
            table = _use_input_table(model, sum(len(d) for d in docs))
            starts = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
            if token_keys and starts[-1]:
                collector = TokenStateCollector(token_keys, states, H, int(starts[-1]))
                text_ids = np.concatenate([np.asarray(d, np.int64) for d in docs])
                documents = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
            with tqdm(total=len(groups), desc=f"{model_id}: trace", unit="batch", disable=not show_progress,
                      leave=False) as bar:
                for g in groups:
                    lengths = torch.tensor([len(docs[i]) for i in g])
                    x = torch.zeros(int(lengths.max()), len(g), dtype=torch.long)
                    keep = torch.zeros(x.shape, dtype=torch.bool)
                    for j, i in enumerate(g):
                        x[: len(docs[i]), j] = torch.tensor(docs[i])
                        keep[: len(docs[i]), j] = torch.from_numpy(doc_keep[i])
                    values = model.trace_packed(x, keys=states, deltas=True, workspace=ws, input_table=table).values
                    mask = (torch.arange(x.size(0))[:, None] < lengths[None, :]).reshape(-1)   # [T*B]
                    acc.update(x.reshape(-1)[mask], values.view(-1, values.shape[-1])[mask],
                               keep=keep.reshape(-1)[mask])
                    if collector is not None:
                        collector.add_documents(values, [int(starts[i]) for i in g], lengths.tolist())
                    tokens += int(lengths.sum())
                    bar.update(1)
                    report("trace", 0.8 * bar.n / len(groups))
        if tokens == 0:
            raise ValueError(f"the {opts.split} split of {corpus.name!r} has no tokens to analyse")
        ws.clear()                     # the trace buffers (0.8 GB for a 2x650 LSTM, all states) are done
        model.clear_trace_cache()

        models_df, metrics_df, vocab_df = model_tables(model_id, ckpt, vocab, opts, tokens, states)
        with store.write_partition(store_root, "models", model_id) as w:
            w.write("models", models_df)
            w.write("training_metrics", metrics_df)
            w.write("vocab", vocab_df)
            cluster_frames, projection_frames = [], []
            # In the store's order (layer, state name, word, unit), so the writer need not sort 17M+ rows.
            in_order = sorted(enumerate(states), key=lambda item: item[1])
            for n_done, (i, key) in enumerate(tqdm(in_order, desc=f"{model_id}: statistics",
                                                   disable=not show_progress, leave=False)):
                stats = acc.stats(i * H, (i + 1) * H)
                words = max(words, len(stats.word_ids))
                for table in response_table(model_id, key[0], key[1], stats, vocab):
                    w.write("word_responses", table, presorted=True)
                if key[1] in CLUSTER_STATES:
                    rows = select_words(stats.n, opts.top_words, opts.min_count)
                    if len(rows) >= 2:
                        strength = np.abs(stats.mean[rows])
                        ks = range(opts.k_min, opts.k_max + 1)
                        found = cocluster_range(strength, ks, seed=opts.seed)
                        frame = cocluster_frame(found, stats.word_ids[rows])
                        frame.insert(0, "state", key[1])
                        frame.insert(0, "layer", key[0])
                        frame.insert(0, "model_id", model_id)
                        cluster_frames.append(frame)
                        projection_frames.append(_projections(model_id, key, stats.mean[rows],
                                                              stats.word_ids[rows], opts.seed))
                report("statistics", 0.8 + 0.15 * (n_done + 1) / len(states))
            if cluster_frames:
                w.write("coclusters", pd.concat(cluster_frames, ignore_index=True))
            if collector is not None:
                collector.write(w, model_id, text_ids, vocab.words, documents)
                del collector
            if projection_frames:
                w.write("projections", pd.concat(projection_frames, ignore_index=True))
            if model.cfg.task == "lm":
                write_lm_losses(w, model_id, model, lm_stream(corpus, vocab, opts.split, opts.max_tokens),
                                vocab.words, lambda f: report("losses", 0.95 + 0.04 * f))
            else:
                write_class_outcomes(w, model_id, model, docs, corpus.labels[opts.split][:len(docs)],
                                     corpus.label_names)
            if opts.gradient_k:
                stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
                streams = max(1, min(64, stream.numel() // (opts.gradient_k + 2)))    # windows of K+1 tokens
                gf = gradient_flow(model, batchify(stream, streams),
                                   opts.gradient_k, seed=opts.seed)
                gf.insert(0, "model_id", model_id)
                w.write("gradient_flow", gf)
            report("publish", 1.0)
    finally:
        acc.close()
        ws.clear()
        shutil.rmtree(spill, ignore_errors=True)
    wall = time.perf_counter() - t_start
    log.info("analysed %s: %d tokens, %d states in %.1fs", model_id, tokens, len(states), wall)
    return AnalysisResult(model_id, tokens, words, states, wall, store.partition_path(store_root, "models", model_id))
