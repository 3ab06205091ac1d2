"""Chance baselines reached through Dash's own dispatch (POST /_dash-update-component), as the browser does.

Compare's matched units come with the matching on shuffled words; Explore's clouds and summary with POS
purity against shuffled tags (on a tiny model of the tagged Brown fixture); a unit's top words with n and z.
"""
from __future__ import annotations

import json

import pytest

from analytics.settings import Settings
from app import ids
from app.server import create_app
from tests.app.dispatching import _key, dispatch


@pytest.fixture(scope="module")
def brown_store(tmp_path_factory, fixtures):
    """A tiny LSTM language model of the tagged Brown fixture, analysed (its vocabulary has POS tags)."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("brown-store")
    corpus = load_corpus(str(fixtures / "brown"))
    train_model("tiny-brown", ModelConfig("lm", "lstm", 1, 8, 6), TrainConfig(epochs=1, batch_size=8, bptt=10),
                root, corpus=corpus, show_progress=False)
    analyze_model("tiny-brown", root, AnalysisOptions(batch_size=8, top_words=60, min_count=2, k_max=4,
                                                      gradient_k=0, max_tokens=4000), corpus=corpus,
                  show_progress=False)
    return root


def _client(store):
    app = create_app(Settings(store=store))
    client = app.server.test_client()
    assert client.get("/healthz").status_code == 200     # registers the pages' callbacks
    return app, client


def _trace(fig, name):
    return next(t for t in fig["data"] if t.get("name") == name)


def test_compare_shows_the_matching_on_shuffled_words(app_store):
    app, client = _client(app_store)
    out = dispatch(app, client, ids.CMP_MATCHES, {
        ids.CMP_MODEL_A: "tiny-lstm", ids.CMP_LAYER_A: 0, ids.CMP_MODEL_B: "tiny-lstm", ids.CMP_LAYER_B: 1,
        ids.CMP_STATE: "h", ids.CMP_K: 3, ids.CMP_NWORDS: 10, ids.CMP_PAIR: {}, ids.CMP_WORD: None},
        f"{ids.CMP_K}.value")
    listing = json.dumps(out[(ids.CMP_MATCHES, "children")], ensure_ascii=False)
    assert "chance: |r| up to 0." in listing and "shuffles, seed 0" in listing and "vs chance" in listing
    fig = out[(_key(ids.CMP_MATCH_FIG), "figure")]
    matched = _trace(fig, "matched |r|")["y"]
    band = _trace(fig, "chance (min–max of 100 shuffles)")["y"]
    assert len(matched) == len(band) == 8 and matched == sorted(matched, reverse=True)
    assert "chance: |r| up to" in fig["layout"]["title"]["text"]
    assert "(shuffled words: 0." in json.dumps(out[(ids.CMP_OVERLAP, "children")], ensure_ascii=False)


def test_compare_chance_does_not_depend_on_which_model_is_a(app_store):
    app, client = _client(app_store)

    def chance(a, b):
        out = dispatch(app, client, ids.CMP_MATCHES, {
            ids.CMP_MODEL_A: "tiny-lstm", ids.CMP_LAYER_A: a, ids.CMP_MODEL_B: "tiny-lstm", ids.CMP_LAYER_B: b,
            ids.CMP_STATE: "h", ids.CMP_K: 3, ids.CMP_NWORDS: 10, ids.CMP_PAIR: {}, ids.CMP_WORD: None},
            f"{ids.CMP_K}.value")
        listing = json.dumps(out[(ids.CMP_MATCHES, "children")], ensure_ascii=False)
        return listing[listing.index("chance: |r| up to"):].split(" matched pairs above it")[0]

    assert "of 100 shuffles" in chance(0, 1) and chance(0, 1) == chance(1, 0)


def test_explore_clouds_and_summary_show_pos_purity_against_chance(brown_store):
    app, client = _client(brown_store)
    out = dispatch(app, client, ids.EX_SUMMARY, {
        ids.EX_MODEL: "tiny-brown", ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_K: 4, ids.EX_NWORDS: 10,
        ids.EX_STROKE: 1.0, ids.EX_LINKS: [0.1, 1.0], ids.EX_CLIP: -1.0, ids.EX_OPTIONS: ["pos", "align"],
        ids.EX_WORDS: [], ids.EX_SELECTION: {}}, f"{ids.EX_K}.value")
    summary = json.dumps(out[(ids.EX_SUMMARY, "children")], ensure_ascii=False)
    assert "POS purity 0." in summary and "chance 0." in summary and "tags shuffled" in summary
    clouds = _trace(out[(_key(ids.EX_COCLUSTER), "figure")], "clouds")
    assert len(clouds["text"]) == 4
    assert all("purity" in t and "(chance 0." in t for t in clouds["text"])
    assert all("POS make-up" in h for h in clouds["hovertext"])


def test_explore_unit_mode_lists_n_and_z_of_each_top_word(app_store):
    app, client = _client(app_store)
    out = dispatch(app, client, ids.EX_DETAIL_MSG, {
        ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_WORDS: [],
        ids.EX_DETAIL_MODE: "unit", ids.EX_SELECTION: {"unit": 2, "chip": 0}}, f"{ids.EX_DETAIL_MODE}.value")
    bar = out[(_key(ids.EX_DETAIL), "figure")]["data"][0]
    assert all(t.startswith("n=") and " · z " in t for t in bar["text"])
    weak = [y for y, t in zip(bar["y"], bar["text"]) if y.startswith("? ")]
    assert all(s in ("/", "") for s in bar["marker"]["pattern"]["shape"])
    assert len(weak) == bar["marker"]["pattern"]["shape"].count("/")
