"""Dashboard fixtures beyond the shared tiny store."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def wide_store(tiny_store, tmp_path_factory, fixtures) -> Path:
    """A copy of ``tiny_store`` plus ``tiny-wide``: a 2×32 LSTM of the tagged Brown fixture, every state analysed.

    Wide enough for what the 8-unit models cannot show: more than 15 matched pairs, chips of many columns
    (a Compare view wider than half a 1366 px screen), a POS legend, and word clusters that co-clustering
    leaves without units (k = 6 and 8 on layer 1).
    """
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("wide-store") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    brown = load_corpus(str(fixtures / "brown"))
    train_model("tiny-wide", ModelConfig("lm", "lstm", 2, 32, 8), TrainConfig(epochs=1, batch_size=8, bptt=10),
                root, corpus=brown, show_progress=False)
    analyze_model("tiny-wide", root, AnalysisOptions(batch_size=8, top_words=60, min_count=2, k_max=8, gradient_k=5,
                                                     max_tokens=4000, states="all"), corpus=brown,
                  show_progress=False)
    return root
