"""Run a trained model over a corpus split and write its tables into the store.

Language models are traced over the split as one continuous stream (cut into
``batch_size`` parallel pieces, as in perplexity evaluation, each piece
starting from zero state); classifiers restart from zero at every document.
Everything of one model goes into one store partition, written atomically.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint
from models.buffers import Workspace
from models.corpora import Corpus, load_corpus
from models.rnn import RecurrentModel
from models.runtime import torch_threads
from models.text import Vocab
from models.train import batchify, lm_stream

from . import store
from .coclusters import cocluster_frame, cocluster_range, select_words
from .gradients import gradient_flow
from .responses import QUANTILES, ResponseAccumulator, ResponseStats

log = logging.getLogger(__name__)
CLUSTER_STATES = ("h", "c")
SUMMARY_BITS = 10   # std and quantiles keep 11 significant bits (rel. error <= 0.05%); n and mean are exact
ProgressFn = Callable[[dict[str, Any]], None]


class AnalysisCancelled(RuntimeError):
    """Raised when ``should_stop`` says so; nothing is written."""


@dataclass
class AnalysisOptions:
    split: str = "test"
    max_tokens: int = 0              # 0 = the whole split
    states: str = "hidden"           # "hidden" (h, and c for LSTM), "all" (gates too) or a list such as "h,gates"
    batch_size: int = 64             # parallel streams (LM) or documents (classifier) per trace call
    chunk_steps: int = 256           # time steps per trace call (LM)
    top_words: int = 500             # words that enter the co-clustering
    min_count: int = 10
    k_min: int = 2
    k_max: int = 20
    quantile_cap: int = 1000         # quantiles from the first this-many occurrences of a word
    gradient_k: int = 50             # gradient flow distances 1..K (0 = skip)
    seed: int = 0

    def validate(self) -> "AnalysisOptions":
        for name in ("batch_size", "chunk_steps", "top_words", "min_count", "quantile_cap"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 2 <= self.k_min <= self.k_max <= 50:
            raise ValueError(f"need 2 <= k_min <= k_max <= 50, got {self.k_min}..{self.k_max}")
        if self.split not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {self.split!r}")
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

    The default, ``hidden``, is h (and c for an LSTM), what DESIGN.md's store
    sizing counts: the gates triple the rows (a 2x650 LSTM on Brown's test
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
               ws: Workspace) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Trace a batchified stream [N, B] chunk by chunk, carrying the state.

    Yields (ids [T, B], values [T, B, len(keys) * H]) with Δh for h and c, the
    activations for gates; ``values`` is reused by the next chunk.
    """
    state = None
    table = _use_input_table(model, data.numel())
    for i in range(0, data.size(0), chunk):
        x = data[i:i + chunk]
        packed = model.trace_packed(x, state, keys=keys, deltas=True, workspace=ws, input_table=table)
        yield x, packed.values
        state = packed.state


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` explicit mantissa bits (relative error <= 2**-(bits+1)).

    The zeroed low bits compress to almost nothing in Parquet (byte-stream-split
    + zstd), which keeps ``word_responses`` compact; rounding is monotone, so
    q10 <= q25 <= ... <= q90 still holds.  Written here because numpy has no
    float32 rounding to a given number of significant bits.
    """
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    drop = 23 - bits
    rounded = (u + np.uint32(1 << (drop - 1))) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return rounded.view(np.float32)


def _response_table(model_id: str, layer: int, state: str, stats: ResponseStats, vocab: Vocab,
                    rows_per_block: int = 2_000_000) -> Iterator[pa.Table]:
    """The long ``word_responses`` rows of one (layer, state), in blocks of whole words."""
    W, H = stats.mean.shape
    words_per_block = max(1, rows_per_block // max(H, 1))
    words = pa.array(vocab.words, pa.string())
    units = np.arange(H, dtype=np.int32)

    def constant(value: str, rows: int) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(np.zeros(rows, np.int32), pa.array([value]))

    for a in range(0, W, words_per_block):
        b = min(W, a + words_per_block)
        ids = stats.word_ids[a:b].astype(np.int32)
        rows = (b - a) * H
        cols = {  # strings as dictionary arrays: no Python object per row
            "model_id": constant(model_id, rows),
            "layer": pa.array(np.full(rows, layer, np.int32)),
            "state": constant(state, rows),
            "word_id": pa.array(np.repeat(ids, H)),
            "word": pa.DictionaryArray.from_arrays(np.repeat(ids, H), words),
            "unit": pa.array(np.tile(units, b - a)),
            "n": pa.array(np.repeat(stats.n[a:b].astype(np.int32), H)),
            "mean": pa.array(stats.mean[a:b].reshape(-1)),
            "std": pa.array(round_mantissa(stats.std[a:b].reshape(-1), SUMMARY_BITS)),
        }
        for q, name in zip(range(len(QUANTILES)), ("q10", "q25", "q50", "q75", "q90")):
            cols[name] = pa.array(round_mantissa(stats.quantiles[q, a:b].reshape(-1), SUMMARY_BITS))
        yield pa.table(cols)


def _model_tables(model_id: str, ckpt: dict, vocab: Vocab, opts: AnalysisOptions, tokens: int,
                  states: list[tuple[int, str]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cfg = ckpt["model_config"]
    metrics = pd.DataFrame(ckpt.get("metrics", []))
    if metrics.empty:
        metrics = pd.DataFrame(columns=["epoch", "split", "loss", "perplexity", "accuracy", "tokens_per_s", "wall_s"])
    metrics.insert(0, "model_id", model_id)

    def pick(split: str, col: str) -> float | None:
        rows = metrics[metrics["split"] == split]
        if rows.empty:
            return None
        row = rows.loc[rows["loss"].astype(float).idxmin()] if split == "valid" else rows.iloc[-1]
        v = row[col]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    created = ckpt.get("created_at")
    models = pd.DataFrame([{
        "model_id": model_id, "name": ckpt.get("name", model_id), "task": cfg["task"], "cell": cfg["cell"],
        "layers": cfg["layers"], "hidden_size": cfg["hidden_size"], "embed_size": cfg["embed_size"],
        "vocab_size": cfg["vocab_size"], "corpus": ckpt.get("corpus", ""),
        "params": json.dumps({"model": cfg, "train": ckpt.get("train_config", {}),
                              "analysis": dataclasses.asdict(opts)}),
        "created_at": pd.Timestamp(created).tz_localize(None) if created and pd.Timestamp(created).tzinfo is None
        else pd.Timestamp(created).tz_convert(None) if created else pd.Timestamp.now(),
        "created_by": ckpt.get("created_by", ""),
        "valid_loss": pick("valid", "loss"), "valid_perplexity": pick("valid", "perplexity"),
        "valid_accuracy": pick("valid", "accuracy"), "test_loss": pick("test", "loss"),
        "test_perplexity": pick("test", "perplexity"), "test_accuracy": pick("test", "accuracy"),
        "analyzed_tokens": tokens, "analysis_split": opts.split,
        "states": ",".join(dict.fromkeys(s for _, s in states)),
    }])
    vocab_df = pd.DataFrame({"model_id": model_id, "word_id": np.arange(len(vocab), dtype=np.int32),
                             "word": vocab.words, "freq": np.asarray(vocab.freq, dtype=np.int64),
                             "pos": [vocab.pos.get(w) for w in vocab.words]})
    return models, metrics, vocab_df


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
    acc = ResponseAccumulator(len(vocab), len(states) * H, quantile_cap=opts.quantile_cap, spill_dir=spill)
    ws = Workspace(device)

    def report(stage: str, fraction: float) -> None:
        if on_progress is not None:
            on_progress({"stage": stage, "progress": round(fraction, 4)})
        if should_stop is not None and should_stop():
            raise AnalysisCancelled("analysis cancelled")

    tokens = words = 0
    try:
        if model.cfg.task == "lm":
            stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
            batch = max(1, min(opts.batch_size, stream.numel() // 2))
            data = batchify(stream, batch)                                           # [N, B]
            total = math.ceil(data.size(0) / opts.chunk_steps)
            with tqdm(total=total, desc=f"{model_id}: trace", unit="chunk", disable=not show_progress,
                      leave=False) as bar:
                for x, values in _lm_chunks(model, data, opts.chunk_steps, states, ws):
                    acc.update(x.reshape(-1), values.view(-1, values.shape[-1]))
                    tokens += x.numel()
                    bar.update(1)
                    report("trace", 0.8 * bar.n / total)
        else:
            docs = [vocab.encode(d) for d in corpus.splits[opts.split]]
            if opts.max_tokens:
                cum = np.cumsum([len(d) for d in docs])
                docs = docs[: max(1, int(np.searchsorted(cum, opts.max_tokens)) + 1)]
            order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
            groups = [order[i:i + opts.batch_size] for i in range(0, len(order), opts.batch_size)]
            table = _use_input_table(model, sum(len(d) for d in docs))
            with tqdm(total=len(groups), desc=f"{model_id}: trace", unit="batch", disable=not show_progress,
                      leave=False) as bar:
                for g in groups:
                    lengths = torch.tensor([len(docs[i]) for i in g])
                    x = torch.zeros(int(lengths.max()), len(g), dtype=torch.long)
                    for j, i in enumerate(g):
                        x[: len(docs[i]), j] = torch.tensor(docs[i])
                    values = model.trace_packed(x, keys=states, deltas=True, workspace=ws, input_table=table).values
                    mask = (torch.arange(x.size(0))[:, None] < lengths[None, :]).reshape(-1)   # [T*B]
                    acc.update(x.reshape(-1)[mask], values.view(-1, values.shape[-1])[mask])
                    tokens += int(lengths.sum())
                    bar.update(1)
                    report("trace", 0.8 * bar.n / len(groups))
        if tokens == 0:
            raise ValueError(f"the {opts.split} split of {corpus.name!r} has no tokens to analyse")
        ws.clear()                     # the trace buffers (0.8 GB for a 2x650 LSTM, all states) are done
        model.clear_trace_cache()

        models_df, metrics_df, vocab_df = _model_tables(model_id, ckpt, vocab, opts, tokens, states)
        with store.write_partition(store_root, "models", model_id) as w:
            w.write("models", models_df)
            w.write("training_metrics", metrics_df)
            w.write("vocab", vocab_df)
            cluster_frames = []
            # In the store's order (layer, state name, word, unit), so the writer need not sort 17M+ rows.
            in_order = sorted(enumerate(states), key=lambda item: item[1])
            for n_done, (i, key) in enumerate(tqdm(in_order, desc=f"{model_id}: statistics",
                                                   disable=not show_progress, leave=False)):
                stats = acc.stats(i * H, (i + 1) * H)
                words = max(words, len(stats.word_ids))
                for table in _response_table(model_id, key[0], key[1], stats, vocab):
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
                report("statistics", 0.8 + 0.15 * (n_done + 1) / len(states))
            if cluster_frames:
                w.write("coclusters", pd.concat(cluster_frames, ignore_index=True))
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
