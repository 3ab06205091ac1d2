"""Compare's "where A beats B" panel on a real store: the stored losses, then the panel through Dash's dispatch."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from analytics import store
from analytics.settings import Settings
from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint
from models.train import lm_stream
from tests.analytics.test_losses import _step_loop_losses
from tests.app.dispatching import dispatch
from tests.app.loss_store import LOSS_ANALYSIS as ANALYSIS


def test_stored_word_loss_equals_a_step_loop_over_the_analysed_split(loss_store):
    root, brown = loss_store
    model, vocab = model_from_checkpoint(read_checkpoint(find_checkpoint(root, "brown-a")), "cpu")
    stream = lm_stream(brown, vocab, ANALYSIS.split, ANALYSIS.max_tokens)
    want = _step_loop_losses(model, stream)                                 # torch's own cells, batch 1
    con = store.connect(root)
    stored = store.query(con, "SELECT word_id, n, nll_mean FROM word_loss WHERE model_id = 'brown-a'")
    tokens = store.query(con, "SELECT position, nll FROM token_loss WHERE model_id = 'brown-a' ORDER BY position")
    con.close()
    targets = stream[1:].numpy()
    for row in stored.itertuples():
        mine = want[targets == row.word_id]
        assert row.n == len(mine)
        assert row.nll_mean == pytest.approx(mine.mean(), rel=1e-4)
    assert stored["n"].sum() == stream.numel() - 1
    np.testing.assert_allclose(tokens["nll"], want, rtol=1e-4, atol=1e-5)
    assert tokens["position"].tolist() == list(range(1, stream.numel()))


@pytest.fixture(scope="module")
def served(loss_store):
    from app.server import create_app

    app = create_app(Settings(store=loss_store[0]))
    client = app.server.test_client()
    assert client.get("/_dash-dependencies").status_code == 200 and client.get("/compare").status_code == 200
    return app, client


def _panel(served, a, b):
    from app import ids

    app, client = served
    out = dispatch(app, client, ids.CMP_LOSS_SUMMARY, {ids.CMP_MODEL_A: a, ids.CMP_MODEL_B: b},
                   f"{ids.CMP_MODEL_A}.value")
    tags_key = json.dumps(ids.CMP_LOSS_TAGS, sort_keys=True, separators=(",", ":"))
    words_key = json.dumps(ids.CMP_LOSS_WORDS, sort_keys=True, separators=(",", ":"))
    return (json.dumps(out[(ids.CMP_LOSS_SUMMARY, "children")]), out[(tags_key, "figure")],
            out[(words_key, "figure")], json.dumps(out[(ids.CMP_LOSS_TABLES, "children")]))


def test_the_panel_shows_where_a_beats_b_by_tag_and_word(served, loss_store):
    summary, tags, words, tables = _panel(served, "brown-a", "brown-b")
    assert "nats per token" in summary and "every token compared" in summary
    bars = tags["data"][0]
    assert "NOUN" in bars["customdata"] and len(bars["x"]) == len(bars["y"]) >= 5
    lo, hi = bars["error_x"]["arrayminus"], bars["error_x"]["array"]
    assert min(lo) >= 0 and min(hi) >= 0                      # every interval holds its estimate
    points = next(t for t in words["data"] if t["name"] == "words")
    assert len(points["x"]) == len(points["y"]) > 20
    assert "gains most" in tables and "brown-a" in tables

    con = store.connect(loss_store[0])               # the total in the summary is the stored losses' difference
    means = store.query(con, "SELECT model_id, avg(nll) AS m FROM token_loss GROUP BY model_id").set_index("model_id")
    con.close()
    delta = means.loc["brown-a", "m"] - means.loc["brown-b", "m"]
    assert f"{abs(delta):.4f} nats" in summary
    assert ("beats" if delta < 0 else "trails") in summary


@pytest.mark.parametrize(("a", "b", "says"), [
    ("brown-a", "tiny-gru", "losses compare only between two language models, or two classifiers"),
    ("brown-a", "brown-a", "Pick two different models"),
    ("brown-a", "tiny-lstm", "analysed on different text"),
])
def test_models_that_cannot_be_compared_get_a_message(served, a, b, says):
    summary, tags, words, _ = _panel(served, a, b)
    assert says in summary
    assert not tags["data"] and not words["data"]


def test_two_classifiers_get_their_per_class_tables_and_confusion_matrices(served):
    summary, left, right, tables = _panel(served, "tiny-gru", "tiny-gru-2")
    assert "Per class" in summary and "mean p(true)" in tables
    for fig in (left, right):
        heat = fig["data"][0]
        assert heat["type"] == "heatmap" and np.asarray(heat["z"]).sum() > 0


def test_a_model_analysed_before_losses_were_stored_says_to_reanalyse(loss_store, tmp_path):
    from app.server import create_app

    root = tmp_path / "store"
    shutil.copytree(loss_store[0], root, ignore=shutil.ignore_patterns(".staging"))
    with store.write_partition(root, "models", "brown-b") as w:      # brown-b as an older analysis left it
        for table in ("models", "training_metrics", "vocab", "word_responses", "coclusters", "word_loss"):
            w.keep(table)
    app = create_app(Settings(store=root))
    client = app.server.test_client()
    assert client.get("/_dash-dependencies").status_code == 200
    summary, _, _, _ = _panel((app, client), "brown-a", "brown-b")
    assert "token losses" in summary and "rnnvis analyze brown-b" in summary
