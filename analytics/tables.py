"""The tables an analysis writes, built from its results: ``models``, ``training_metrics``,
``vocab`` and the long ``word_responses`` rows (see docs/store-schema.md for the columns).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models.summary import capped_json
from models.text import Vocab

from .responses import QUANTILES, ResponseStats

SUMMARY_BITS = 10   # std and quantiles keep 11 significant bits (rel. error <= 0.05%); n and mean are exact


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


def response_table(model_id: str, layer: int, state: str, stats: ResponseStats, vocab: Vocab,
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


def model_tables(model_id: str, ckpt: dict, vocab: Vocab, opts: Any, tokens: int,
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
        "params": capped_json({"model": cfg, "train": ckpt.get("train_config", {}),  # bounded, no paths
                               "analysis": dataclasses.asdict(opts),
                               **({"imported": ckpt["imported"]} if ckpt.get("imported") else {})}),
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
