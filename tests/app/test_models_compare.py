"""The Models page suggests comparable models only (same task and corpus), best test score first, and shows the
name given on the job form; a store with three language models of one corpus, one of another and a classifier."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from app.logic import models
from app.logic.common import analysed_models
from app.reader import Reader


@pytest.fixture(scope="module")
def peers_store(wide_store, fixtures, tmp_path_factory):
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("peers") / "store"
    shutil.copytree(wide_store, root, ignore=shutil.ignore_patterns(".staging"))
    ptb = load_corpus(str(fixtures / "ptb"))
    for model_id, cell, epochs, name in (("tiny-rnn", "rnn", 1, "plain RNN baseline"), ("tiny-gru-lm", "gru", 3, None)):
        train_model(model_id, ModelConfig("lm", cell, 1, 8, 6), TrainConfig(epochs=epochs, batch_size=4, bptt=10),
                    root, corpus=ptb, name=name, show_progress=False)
        analyze_model(model_id, root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=4, gradient_k=5),
                      corpus=ptb, show_progress=False)
    return root


def _compare_links(table) -> dict[str, list[str]]:
    """model id -> the models its row offers to compare with, in order."""
    out = {}
    for row in table.children[1].children:
        model_id = row.children[0].children[0].children
        text = json.dumps(row.children[-1].to_plotly_json(), default=lambda o: o.to_plotly_json())
        out[model_id] = re.findall(r"Compare with ([\w-]+)", text)
    return out


def test_compare_with_offers_only_models_of_the_same_task_and_corpus_best_first(peers_store):
    reader = Reader(peers_store)
    df = reader.models().set_index("model_id")
    links = _compare_links(models.models_table(reader))
    corpus = df.loc["tiny-lstm", "corpus"]
    ptb_lms = [m for m in df.index if df.loc[m, "task"] == "lm" and df.loc[m, "corpus"] == corpus]
    assert sorted(ptb_lms) == ["tiny-gru-lm", "tiny-lstm", "tiny-rnn"]
    # reference: the other PTB language models ordered by their test perplexity, lowest first
    expected = sorted((m for m in ptb_lms if m != "tiny-lstm"), key=lambda m: df.loc[m, "test_perplexity"])
    assert links["tiny-lstm"] == expected
    assert links["tiny-gru"] == [] and links["tiny-wide"] == []      # a classifier; the only Brown model
    assert set(links["tiny-rnn"]) == {"tiny-lstm", "tiny-gru-lm"}


def test_the_job_forms_name_shows_on_the_models_page_and_in_pickers(peers_store):
    reader = Reader(peers_store)
    table, options, _ = models.models_page(reader)
    row = next(r for r in table.children[1].children if r.children[0].children[0].children == "tiny-rnn")
    assert "plain RNN baseline" in json.dumps(row.children[0].to_plotly_json(), default=lambda o: o.to_plotly_json())
    assert {"label": "tiny-rnn · plain RNN baseline", "value": "tiny-rnn"} in options
    label = next(o["label"] for o in analysed_models(reader) if o["value"] == "tiny-rnn")
    assert label.startswith("tiny-rnn · plain RNN baseline (")
    assert next(o["label"] for o in analysed_models(reader) if o["value"] == "tiny-gru-lm").startswith("tiny-gru-lm (")


def test_pages_open_on_the_flagship_lstm_when_the_store_has_it(fixtures, tmp_path):
    """The README's examples use demo-lstm: a page without a model in its link opens on it, not on the first id."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from app.logic.common import default_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    ptb = load_corpus(str(fixtures / "ptb"))
    for model_id, cell in (("demo-gru", "gru"), ("demo-lstm", "lstm")):      # tiny stand-ins, ids as in the demo
        train_model(model_id, ModelConfig("lm", cell, 1, 4, 4), TrainConfig(epochs=1, batch_size=4, bptt=10),
                    tmp_path, corpus=ptb, show_progress=False)
        analyze_model(model_id, tmp_path, AnalysisOptions(batch_size=4, top_words=20, min_count=2, k_max=3,
                                                          gradient_k=0), corpus=ptb, show_progress=False)
    reader = Reader(tmp_path)
    assert reader.model_ids() == ["demo-gru", "demo-lstm"]
    assert default_model(reader, None) == "demo-lstm" and default_model(reader, "demo-gru") == "demo-gru"
