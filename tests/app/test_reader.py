"""The reader on a real tiny store: queries, caches and their invalidation."""
from __future__ import annotations

import numpy as np
import pytest

from analytics import store
from analytics.store import UnknownModelError
from app.reader import LRU, AnalysisMissingError, Reader


@pytest.fixture(scope="module")
def reader(app_store):
    return Reader(app_store)


def test_lru_is_bounded_and_counts_hits():
    c = LRU[int](2)
    assert c.get("a", lambda: 1) == 1
    assert c.get("a", lambda: 2) == 1
    c.get("b", lambda: 3)
    c.get("c", lambda: 4)
    assert len(c) == 2 and c.hits == 1
    assert c.get("a", lambda: 5) == 5  # evicted, recomputed


def test_models_and_metadata(reader):
    df = reader.models()
    assert set(df["model_id"]) == {"tiny-lstm", "tiny-gru"}
    assert reader.layer_states("tiny-lstm")[1][:2] == ["h", "c"]
    assert reader.ks("tiny-lstm") == [2, 3, 4, 5]
    m = reader.metrics(["tiny-lstm"])
    assert set(m["split"]) >= {"train", "valid"}


def test_unknown_model_lists_known_ones(reader):
    with pytest.raises(UnknownModelError, match="tiny-gru"):
        reader.model("nope")
    with pytest.raises(UnknownModelError):
        reader.model("../etc")


def test_layer_data_matches_the_store(reader, app_store):
    d = reader.layer_data("tiny-lstm", 1, "h")
    assert d.mean.shape == (len(d.word_ids), 8)
    con = store.connect(app_store)
    row = store.query(con, "SELECT mean FROM word_responses WHERE model_id = ? AND layer = 1 AND state = 'h' "
                      "AND word_id = ? AND unit = 3", ["tiny-lstm", int(d.word_ids[2])])
    assert d.mean[2, 3] == pytest.approx(float(row["mean"][0]))
    assert d.ks == [2, 3, 4, 5]


def test_cluster_view_slices_per_k_and_uses_the_nearest_stored_k(reader):
    v3 = reader.clusters("tiny-lstm", 1, "h", 3)
    assert v3.k == 3 and v3.edges.shape == (3, 3)
    assert set(v3.units["cluster"]) <= {0, 1, 2}
    assert reader.clusters("tiny-lstm", 1, "h", 20).k == 5
    # every word sits in one cluster, units are ranked inside their chip
    assert v3.units.groupby("cluster")["rank"].apply(lambda r: sorted(r) == list(range(len(r)))).all()
    # gates borrow the h clustering
    g = reader.clusters("tiny-lstm", 0, "f", 3)
    assert g.cluster_state == "h"
    assert (g.units["cluster"].to_numpy() == reader.clusters("tiny-lstm", 0, "h", 3).units["cluster"].to_numpy()).all()


def test_caches_are_keyed_by_partition_version(reader, app_store, tiny_store):
    v = reader.version("tiny-lstm")
    reader.clusters("tiny-lstm", 1, "h", 3)
    hits = reader._views.hits
    reader.clusters("tiny-lstm", 1, "h", 3)
    assert reader._views.hits == hits + 1
    # rewrite the partition (same content, new version): the next read misses the cache
    with store.write_partition(app_store, "models", "tiny-lstm") as w:
        for t in ("models", "training_metrics", "vocab", "word_responses", "coclusters", "gradient_flow"):
            w.keep(t)
    assert reader.version("tiny-lstm") != v
    misses = reader._views.misses
    reader.clusters("tiny-lstm", 1, "h", 3)
    assert reader._views.misses == misses + 1


def test_word_detail_and_unit_words(reader):
    d = reader.word_detail("tiny-lstm", 0, "h", "the")
    assert list(d["unit"]) == list(range(8))
    assert (d["q10"] <= d["q50"]).all() and (d["q50"] <= d["q90"]).all()
    assert reader.word_detail("tiny-lstm", 0, "h", "The").equals(d)   # normalised like the corpus
    assert reader.word_detail("tiny-lstm", 0, "h", "zzzqqq").empty
    u = reader.unit_words("tiny-lstm", 0, "h", 2, top=3)
    assert len(u) == 6 and u["mean"].is_monotonic_decreasing
    # n and z = mean / (std/√n) of each word, from word_responses; weak rows are flagged
    d = reader.word_detail("tiny-lstm", 0, "h", u["word"][0]).set_index("unit").loc[2]
    assert u["n"][0] == d["n"] and u["z"][0] == pytest.approx(d["mean"] / (d["std"] / np.sqrt(d["n"])), rel=1e-4)
    assert (u["weak"] == ((u["n"] < 5) | ~(u["z"].abs() >= 2))).all()


def test_sentences_round_trip_through_the_store(reader):
    sid = reader.add_sentence("tiny-gru", "the food is good but the cat zzz")
    meta = reader.sentence(sid)
    assert meta["model_id"] == "tiny-gru" and meta["created_by"] == "anonymous"
    tokens, values = reader.sentence_states(sid, 0, "h")
    assert tokens[-1] == "<unk>" and values.shape == (8, 8)
    g = reader.glyphs(sid, 0, "h", 3)
    assert g["original"][-1] == "zzz"
    assert g["contributions"].shape == (8, 2)
    assert set(g["measures"]["cluster"]) <= {0, 1, 2}
    assert reader.sentence("0000000000000000dead") is None


def test_matching_two_layers(reader):
    m = reader.matching(("tiny-lstm", 0, "h"), ("tiny-lstm", 1, "h"), 3)
    assert len(m["pairs"]) == 8
    assert sorted(m["pairs"]["unit_a"]) == list(range(8))
    assert -1 <= m["pairs"]["correlation"].min() <= m["pairs"]["correlation"].max() <= 1
    assert m["overlap"]["shared_words"] >= 3
    c = m["chance"]   # the same matching on shuffled words, computed once per pair whatever k
    assert c["shuffles"] == 100 and 0 < c["level"] <= c["max"] <= 1 and len(c["by_rank_mean"]) == 8
    assert reader.matching(("tiny-lstm", 0, "h"), ("tiny-lstm", 1, "h"), 4)["chance"] is c


def test_purity_of_an_untagged_corpus_says_why_there_is_none(reader):
    p = reader.purity("tiny-lstm", 1, "h", 3)
    assert p["overall"] is None and p["clusters"] is None and "no POS tags" in p["reason"]
    assert reader.purity("tiny-lstm", 1, "h", 3) is p     # cached


def test_missing_analysis_is_reported(app_store):
    from models.checkpoint import checkpoint_file
    r = Reader(app_store)
    src = checkpoint_file(app_store, "tiny-gru")
    dst = checkpoint_file(app_store, "half-done")
    dst.write_bytes(src.read_bytes())
    try:
        assert "half-done" in r.pending_models()
    finally:
        dst.unlink()
    with store.write_partition(app_store, "models", "no-analysis") as w:
        w.write("models", r.models().iloc[[0]].assign(model_id="no-analysis"))
    try:
        with pytest.raises(AnalysisMissingError, match="analysis has not finished"):
            r.require_analysis("no-analysis")
    finally:
        store.delete_partition(app_store, "models", "no-analysis")


def test_gradient_flow(reader):
    gf = reader.gradient_flow(["tiny-lstm", "tiny-gru"])
    assert set(gf["model_id"]) == {"tiny-lstm", "tiny-gru"}
    assert np.isfinite(gf["grad_norm"]).all()
