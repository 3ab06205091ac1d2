"""The analysis on a GPU: statistics on the device equal the CPU's, and a whole analysis runs there.

The CUDA tests skip cleanly without a GPU (bench/gpu_check.sh runs them on one); the CPU tests
check the same code paths that the device path shares, and the update's split over threads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from analytics import moments
from analytics.quantiles import systematic_keep
from analytics.responses import ResponseAccumulator

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


def _chunks(seed: int = 0, vocab: int = 60, width: int = 300, rows: int = 5000, size: int = 777):
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.3, rows) % vocab).astype(np.int64)
    vals = (rng.standard_normal((rows, width)) * rng.uniform(0.1, 3, width) + rng.uniform(-1, 1, width))
    vals = vals.astype(np.float32)
    keep = systematic_keep(ids, 40)
    return [(torch.from_numpy(ids[i:i + size]), torch.from_numpy(vals[i:i + size]), torch.from_numpy(keep[i:i + size]))
            for i in range(0, rows, size)]


def _stats(device: str, threads: int, chunks, keep: bool):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        acc = ResponseAccumulator(60, chunks[0][1].shape[1], quantile_cap=40, device=device)
        for ids, vals, k in chunks:
            acc.update(ids.to(device), vals.to(device), keep=k if keep else None)
        assert torch.get_num_threads() == threads
        return acc.finalize()
    finally:
        torch.set_num_threads(old)


def _same(a, b, exact: bool) -> None:
    np.testing.assert_array_equal(a.word_ids, b.word_ids)
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)       # the same float16 sample, sorted alike
    if exact:
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.std, b.std)
    else:                                                          # float64 sums in another order
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a.std, b.std, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("keep", [False, True])
def test_two_threads_equal_one_thread(keep, monkeypatch):
    """Two torch threads: the rows of each chunk are cut at a word boundary into one part per thread, and the
    sums are the same, bit for bit (each word's rows are added in one order)."""
    monkeypatch.setattr(moments, "MIN_SPLIT_ROWS", 64)                  # the test's chunks of 777 rows: 2 parts
    parts = []
    real = moments.run_split
    monkeypatch.setattr(moments, "run_split", lambda fn, n: parts.append(n) or real(fn, n))
    chunks = _chunks()
    _same(_stats("cpu", 2, chunks, keep), _stats("cpu", 1, chunks, keep), exact=True)
    assert parts == [2] * len(chunks)


@cuda
@pytest.mark.parametrize("keep", [False, True])
def test_statistics_on_cuda_equal_the_cpus(keep):
    chunks = _chunks(seed=1)
    _same(_stats("cuda", 1, chunks, keep), _stats("cpu", 1, chunks, keep), exact=False)


@cuda
def test_analysis_on_cuda_equals_the_cpus(tmp_path, fixtures):
    """A whole analysis (trace, statistics, co-clusters, gradient flow) on CUDA, against the same on the CPU."""
    pytest.importorskip("duckdb")                                  # the store's views (gpu_check.sh carries it)
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    corpus = load_corpus(str(Path(fixtures) / "ptb"))
    train_model("g", ModelConfig("lm", "lstm", 2, 16, 8), TrainConfig(epochs=1, batch_size=4, bptt=10), tmp_path,
                corpus=corpus, show_progress=False)
    frames = {}
    for device in ("cpu", "cuda"):
        root = tmp_path / device
        (root / "checkpoints").mkdir(parents=True)
        (root / "checkpoints" / "g.pt").write_bytes((tmp_path / "checkpoints" / "g.pt").read_bytes())
        analyze_model("g", root, AnalysisOptions(batch_size=4, states="all", top_words=30, min_count=2, k_max=4,
                                                 gradient_k=5), corpus=corpus, device=device, show_progress=False)
        files = sorted(root.rglob("word_responses.*.parquet"))      # models/model_id=g/...
        frames[device] = pd.concat([pq.ParquetFile(f).read().to_pandas() for f in files]).sort_values(
            ["layer", "state", "word_id", "unit"])
        assert sorted(root.rglob("gradient_flow.*.parquet"))
    cpu, gpu = frames["cpu"], frames["cuda"]
    assert len(cpu) == len(gpu) > 0
    np.testing.assert_array_equal(cpu["n"].to_numpy(), gpu["n"].to_numpy())
    for col in ("mean", "std", "q10", "q50", "q90"):
        np.testing.assert_allclose(cpu[col].to_numpy(), gpu[col].to_numpy(), rtol=1e-3, atol=1e-4, err_msg=col)
