"""POS probes: a planted tag, a stored probe recomputed with scikit-learn, the untrained reference, no gold tags."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from analytics.probes import PROBE, probe_sample, sentence_ids
from analytics.probes.fit import probe_rows
from analytics.token_states import unit_series
from models.checkpoint import checkpoint_file, read_checkpoint, save_checkpoint
from models.config import ModelConfig, TrainConfig
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.text import Vocab
from models.train import lm_stream, train_model
from tests.planted import planted_text

OPTS = dict(batch_size=8, top_words=40, min_count=2, k_max=4, gradient_k=0, max_tokens=5000)
BUDGET = 2500


def test_planted_tag_reaches_100_and_control_stays_at_chance():
    """A tag carried by one unit (the token after a trigger, whatever the word) and nothing else: the probe reads
    it off that unit; the control task (a random tag per word type) finds nothing to read: majority level."""
    vocab, ids, values, starts = planted_text(6000, 16, 1, 0.5, (5,), [f"w{i}" for i in range(40)], (6, 14), 0.2)
    tags = np.where(np.isin(np.arange(len(ids)), starts), "P", "O")
    sample = probe_sample(list(tags), ids, np.arange(len(ids)) // 12, 0, seed=0)
    row, units = probe_rows((0, "h"), values, values, sample, 0, {})
    assert row["accuracy"] > 0.99
    assert row["control_accuracy"] <= row["majority"] + 0.02
    assert row["untrained_accuracy"] == row["accuracy"]           # the same states given as both
    top = units[(units["rank"] == 1) & (units["tag"] == "P")].sort_values("weight", ascending=False)
    assert int(top["unit"].iloc[0]) == 5                          # the planted unit favours P most


@pytest.fixture(scope="module")
def brown_store(tmp_path_factory):
    """A tiny LSTM of the packed Brown corpus (the fixture's splits are too short to subsample), every state
    stored per token, its probes on a subsample of 5,000 test tokens; and an untrained one."""
    root = tmp_path_factory.mktemp("probe-store")
    brown = load_corpus("brown")
    mc = ModelConfig("lm", "lstm", 2, 16, 8)
    tc = TrainConfig(epochs=1, batch_size=8, bptt=10, max_train_tokens=20000, vocab_size=2000)
    train_model("probe-a", mc, tc, root, corpus=brown, show_progress=False)
    analyze_model("probe-a", root, AnalysisOptions(**OPTS, token_states="all", probe_tokens=BUDGET), corpus=brown,
                  show_progress=False)
    vocab = Vocab.build(brown.tokens("train"), tc.vocab_size, brown.pos_counts)
    mc = dataclasses.replace(mc, vocab_size=len(vocab))
    torch.manual_seed(tc.seed)                                     # as train_model seeds its first weights
    fresh = RecurrentModel(mc)
    fresh.init_weights(tc.init_range, tc.init)
    save_checkpoint(checkpoint_file(root, "probe-fresh"), {
        "model_id": "probe-fresh", "name": "probe-fresh", "corpus": brown.name, "created_by": "test",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "label_names": [],
        "vocab": vocab.to_dict(), "model_config": dataclasses.asdict(mc), "train_config": dataclasses.asdict(tc),
        "state_dict": fresh.state_dict(), "metrics": [], "complete": True})
    analyze_model("probe-fresh", root, AnalysisOptions(**OPTS), corpus=brown, show_progress=False)
    return root, brown


def test_stored_probe_recomputed_with_scikit_learn(brown_store):
    root, brown = brown_store
    con = store.connect(root)
    stored = store.query(con, "SELECT * FROM probes WHERE model_id = 'probe-a' AND layer = 1 AND state = 'h'")
    assert len(stored) == 1
    params = json.loads(stored["params"][0])
    assert params["subsampled"] and params["sampled_tokens"] < params["tagged_tokens"]
    # The same split rule, the states the analysis stored per token (the same trace), a probe fitted here.
    vocab = Vocab.from_dict(read_checkpoint(checkpoint_file(root, "probe-a"))["vocab"])
    stream = lm_stream(brown, vocab, "test", OPTS["max_tokens"])
    lengths = [len(s) for s in brown.splits["test"]]
    sample = probe_sample(brown.tag_stream("test")[:stream.numel()], stream.numpy(),
                          sentence_ids(lengths, stream.numel()), BUDGET, seed=0)
    sent = sentence_ids(lengths, stream.numel())[sample.positions]
    assert not set(sent[sample.train]) & set(sent[~sample.train])            # split by sentence
    X = unit_series(con, "probe-a", 1, "h", range(16), stream.numel())[sample.positions]
    tr, te = sample.train, ~sample.train
    scaler = StandardScaler().fit(X[tr])
    clf = LogisticRegression(C=PROBE["C"], max_iter=PROBE["max_iter"], tol=PROBE["tol"]).fit(scaler.transform(X[tr]),
                                                                                          sample.tags[tr])
    assert abs(clf.score(scaler.transform(X[te]), sample.tags[te]) - stored["accuracy"][0]) <= 0.01
    assert stored["n_train"][0] == tr.sum() and stored["n_test"][0] == te.sum()
    majority = np.mean(sample.tags[te] == np.bincount(sample.tags[tr]).argmax())
    assert stored["majority"][0] == pytest.approx(majority)
    units = store.query(con, "SELECT count(*) AS n, min(rank) AS lo, max(rank) AS hi FROM probe_units "
                             "WHERE model_id = 'probe-a' AND layer = 1 AND state = 'h'")
    assert (units["n"][0], units["lo"][0], units["hi"][0]) == (16 * 3, 1, 3)


def test_untrained_reference_is_the_models_first_weights(brown_store):
    """An untrained checkpoint (training's seed and init) gets the same accuracy as its untrained reference:
    the rebuilt weights are its own, and each block's warm-up gives its continuous-stream states."""
    root, _ = brown_store
    rows = store.query(store.connect(root), "SELECT layer, state, accuracy, untrained_accuracy FROM probes "
                                            "WHERE model_id = 'probe-fresh' ORDER BY layer, state")
    assert len(rows) == 4
    assert np.allclose(rows["accuracy"], rows["untrained_accuracy"], atol=0.005)


def test_no_gold_tags_no_rows(tiny_store):
    """tiny-lstm is a PTB-format model: no gold tags, no probe rows (the views say so)."""
    con = store.connect(tiny_store)
    assert store.query(con, "SELECT count(*) AS n FROM probes WHERE model_id = 'tiny-lstm'")["n"][0] == 0
    assert store.query(con, "SELECT count(*) AS n FROM probe_units")["n"][0] == 0
