"""Shared fixtures: tiny corpora, tiny trained models in a temporary store."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A store with a tiny LSTM language model and a tiny GRU classifier, trained and analysed."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("store")
    lm = load_corpus(str(FIXTURES / "ptb"))
    train_model("tiny-lstm", ModelConfig("lm", "lstm", 2, 8, 6), TrainConfig(epochs=2, batch_size=4, bptt=10),
                root, corpus=lm, show_progress=False)
    analyze_model("tiny-lstm", root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=5,
                                                     gradient_k=5, states="all"), corpus=lm, show_progress=False)
    clf = load_corpus(str(FIXTURES / "reviews.csv"))
    train_model("tiny-gru", ModelConfig("sentiment", "gru", 1, 8, 6),
                TrainConfig(epochs=2, batch_size=8, optimizer="adam", lr=1e-2), root, corpus=clf,
                show_progress=False)
    analyze_model("tiny-gru", root, AnalysisOptions(batch_size=8, top_words=30, min_count=2, k_max=5,
                                                    gradient_k=5, states="all"), corpus=clf, show_progress=False)
    return root


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium through the dashboard (needs "
                                       "/usr/bin/chromium and /usr/bin/chromedriver)")


@pytest.fixture(scope="session")
def app_store(tiny_store, tmp_path_factory) -> Path:
    """A private copy of ``tiny_store`` for the dashboard tests (they add sentences to it)."""
    import shutil

    root = tmp_path_factory.mktemp("app-store") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    return root
