"""A store for the loss comparison: two language models of one corpus, two classifiers."""
from __future__ import annotations

import shutil
from pathlib import Path

from analytics.pipeline import AnalysisOptions, analyze_model
from models.config import ModelConfig, TrainConfig
from models.corpora import Corpus, load_corpus
from models.train import train_model

#: The analysis of the loss-comparison models: a short prefix, so that step-loop references stay quick.
LOSS_ANALYSIS = AnalysisOptions(batch_size=8, top_words=40, min_count=2, k_max=4, gradient_k=0, max_tokens=3000)


def build_loss_store(tiny_store: Path, root: Path, fixtures: Path) -> tuple[Path, Corpus]:
    """A copy of ``tiny_store`` plus brown-a (3 epochs), brown-b (1 epoch) and tiny-gru-2."""
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    brown = load_corpus(str(fixtures / "brown"))
    for model_id, epochs in (("brown-a", 3), ("brown-b", 1)):
        train_model(model_id, ModelConfig("lm", "lstm", 2, 16, 8),
                    TrainConfig(epochs=epochs, batch_size=8, bptt=10, max_train_tokens=20000), root, corpus=brown,
                    show_progress=False)
        analyze_model(model_id, root, LOSS_ANALYSIS, corpus=brown, show_progress=False)
    clf = load_corpus(str(fixtures / "reviews.csv"))
    train_model("tiny-gru-2", ModelConfig("sentiment", "gru", 1, 8, 6), TrainConfig(epochs=1, batch_size=8),
                root, corpus=clf, show_progress=False)
    analyze_model("tiny-gru-2", root, LOSS_ANALYSIS, corpus=clf, show_progress=False)
    return root, brown
