"""The analysis pipeline end to end on tiny models, read back through the store's views."""
import numpy as np
import pytest
import torch

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from models import load_model
from models.config import ModelConfig, TrainConfig
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.train import lm_stream, train_model


@pytest.fixture(scope="module")
def ptb(fixtures):
    return load_corpus(str(fixtures / "ptb"))


def test_telescoping_over_one_continuous_stream(tmp_path, ptb):
    """Σ_w n_w · mean_w = h_T − h_0 for every unit, for h and c of every layer."""
    train_model("tele", ModelConfig("lm", "lstm", 2, 8, 6), TrainConfig(epochs=1, batch_size=4, bptt=10),
                tmp_path, corpus=ptb, show_progress=False)
    analyze_model("tele", tmp_path, AnalysisOptions(batch_size=1, chunk_steps=7, states="h,c", min_count=2,
                                                    top_words=20, k_max=4, gradient_k=3),
                  corpus=ptb, show_progress=False)
    model, vocab = load_model("tele", store=tmp_path)
    traced = model.trace(lm_stream(ptb, vocab, "test")[:, None])
    con = store.connect(tmp_path)
    df = store.query(con, "SELECT layer, state, unit, sum(n * mean::DOUBLE) AS total FROM word_responses "
                          "WHERE model_id = ? GROUP BY ALL ORDER BY ALL", ["tele"])
    for (layer, state), g in df.groupby(["layer", "state"]):
        final = traced[(layer, state)][-1, 0].double().numpy()                # h_T − h_0 with h_0 = 0
        assert np.allclose(g["total"].to_numpy(), final, atol=1e-4), (layer, state)


def test_tables_and_columns(tiny_store):
    con = store.connect(tiny_store)
    models = store.query(con, "SELECT * FROM models ORDER BY model_id")
    assert list(models["model_id"]) == ["tiny-gru", "tiny-lstm"]
    lstm = models.set_index("model_id").loc["tiny-lstm"]
    assert lstm["cell"] == "lstm" and lstm["layers"] == 2 and lstm["test_perplexity"] > 1
    assert models.set_index("model_id").loc["tiny-gru", "test_accuracy"] >= 0
    states = store.query(con, "SELECT DISTINCT layer, state FROM word_responses WHERE model_id='tiny-lstm'")
    assert len(states) == 12                                                   # 2 layers x h c i f g o
    gru_states = set(store.query(con, "SELECT DISTINCT state FROM word_responses WHERE model_id='tiny-gru'")["state"])
    assert gru_states == {"h", "z", "r", "n"}
    rows = store.query(con, "SELECT * FROM word_responses WHERE model_id='tiny-lstm' AND layer=1 AND state='h'")
    assert (rows["q10"] <= rows["q25"] + 1e-6).all() and (rows["q25"] <= rows["q50"] + 1e-6).all()
    assert (rows["q75"] <= rows["q90"] + 1e-6).all() and (rows["n"] >= 1).all()
    assert rows.groupby("word_id")["unit"].nunique().eq(8).all()
    cc = store.query(con, "SELECT k, axis, count(DISTINCT cluster) AS c FROM coclusters "
                          "WHERE model_id='tiny-lstm' AND layer=0 AND state='c' GROUP BY ALL")
    assert set(cc["k"]) == {2, 3, 4, 5} and (cc["c"] <= cc["k"]).all()
    vocab = store.query(con, "SELECT * FROM vocab WHERE model_id='tiny-lstm' ORDER BY word_id")
    assert list(vocab["word"][:3]) == ["<pad>", "<unk>", "<eos>"]
    metrics = store.query(con, "SELECT * FROM training_metrics WHERE model_id='tiny-lstm'")
    assert set(metrics["split"]) == {"train", "valid", "test"}
    gf = store.query(con, "SELECT * FROM gradient_flow WHERE model_id='tiny-lstm' ORDER BY layer, distance")
    assert list(gf["distance"][:5]) == [1, 2, 3, 4, 5] and (gf["grad_norm"] > 0).all()


def test_quantiles_match_numpy(tmp_path, ptb):
    train_model("q", ModelConfig("lm", "rnn", 1, 4, 4), TrainConfig(epochs=1, batch_size=2, bptt=5),
                tmp_path, corpus=ptb, show_progress=False)
    analyze_model("q", tmp_path, AnalysisOptions(batch_size=1, states="h", gradient_k=0, min_count=1, top_words=10,
                                                 k_max=3), corpus=ptb, show_progress=False)
    model, vocab = load_model("q", store=tmp_path)
    ids = lm_stream(ptb, vocab, "test")
    h = model.trace(ids[:, None])[(0, "h")][:, 0].numpy()
    dh = np.diff(np.vstack([np.zeros((1, 4)), h]), axis=0)
    word = int(torch.mode(ids).values)
    sample = dh[ids.numpy() == word]
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    got = store.query(store.connect(tmp_path), "SELECT q10, q25, q50, q75, q90 FROM word_responses "
                                               "WHERE model_id='q' AND word_id=? ORDER BY unit", [word]).to_numpy().T
    # The quantiles are those of the float16 values kept (analytics/quantiles.py), so they are off by float16's
    # rounding of the samples, relative to the samples' size, not to the quantile's: midway between -2 and 1.986
    # (this saturated RNN has such words) is -0.007 give or take 0.0005.
    exact = np.quantile(sample, qs, axis=0)
    assert (np.abs(got - exact) <= 2.0 ** -11 * np.abs(sample).max(axis=0) + 1e-6).all()


def test_rerun_replaces_and_bad_inputs(tiny_store, tmp_path):
    from models.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="unknown model|no checkpoint"):
        analyze_model("missing", tiny_store)
    with pytest.raises(ValueError, match="states"):
        analyze_model("tiny-gru", tiny_store, AnalysisOptions(states="c"))
    with pytest.raises(ValueError, match="k_min"):
        AnalysisOptions(k_max=99).validate()


def test_state_selection():
    from analytics.pipeline import _select_states
    lstm = RecurrentModel(ModelConfig("lm", "lstm", 2, 4, 4))
    gru = RecurrentModel(ModelConfig("lm", "gru", 1, 4, 4))
    assert AnalysisOptions().states == "hidden"
    assert _select_states(lstm, "hidden") == [(0, "h"), (0, "c"), (1, "h"), (1, "c")]
    assert _select_states(gru, "hidden") == [(0, "h")]
    assert _select_states(gru, "all") == [(0, "h"), (0, "z"), (0, "r"), (0, "n")]
    assert _select_states(lstm, "c,gates")[:5] == [(0, "c"), (0, "i"), (0, "f"), (0, "g"), (0, "o")]
    with pytest.raises(ValueError, match="has states h, z, r, n"):
        _select_states(gru, "h,c")


def test_round_mantissa_is_bounded_and_monotone():
    from analytics.pipeline import round_mantissa
    x = np.sort(np.random.default_rng(0).standard_normal(10_000).astype(np.float32)) * np.float32(1e-3)
    r = round_mantissa(x, 10)
    assert np.max(np.abs(r / x - 1)) <= 2.0 ** -11
    assert np.all(np.diff(r) >= 0)
    assert (r.view(np.uint32) & np.uint32((1 << 13) - 1) == 0).all()


def test_word_responses_file_is_in_sort_order(tiny_store):
    # The pipeline writes states in the view's order and skips the writer's sort: check the promise holds.
    import pyarrow.parquet as pq
    part = store.partition_path(tiny_store, "models", "tiny-lstm")
    (path,) = [p for p in part.iterdir() if p.name.startswith("word_responses")]
    df = pq.read_table(path, columns=["layer", "state", "word_id", "unit"]).to_pandas()
    df["state"] = df["state"].astype(str)
    assert len(df) > 0 and df.equals(df.sort_values(["layer", "state", "word_id", "unit"]).reset_index(drop=True))


def _contract(model_id: str, root, norm: float) -> None:
    """Rescale a vanilla RNN's recurrent matrix to operator norm ``norm`` (a contraction) in its checkpoint."""
    from models.checkpoint import checkpoint_file, model_from_checkpoint, read_checkpoint, save_checkpoint
    path = checkpoint_file(root, model_id)
    ckpt = read_checkpoint(path)
    model, _ = model_from_checkpoint(ckpt)
    with torch.no_grad():
        for layer in range(model.cfg.layers):
            w = getattr(model.rnn, f"weight_hh_l{layer}")
            w.mul_(norm / torch.linalg.matrix_norm(w, ord=2))
    ckpt["state_dict"] = model.state_dict()
    save_checkpoint(path, ckpt)


def test_pieces_tail_and_quantiles_in_text_order(tmp_path, ptb):
    """Parallel warmed-up pieces + the tail: every token counted, quantiles from the text-order sample."""
    from analytics.quantiles import systematic_keep
    train_model("p", ModelConfig("lm", "rnn", 1, 6, 4), TrainConfig(epochs=1, batch_size=2, bptt=5),
                tmp_path, corpus=ptb, show_progress=False)
    _contract("p", tmp_path, 0.5)              # so a warm-up of 20 steps puts each piece within 0.5**20 of the stream
    model, vocab = load_model("p", store=tmp_path)
    ids = lm_stream(ptb, vocab, "test")
    assert ids.numel() % 4 != 0                                                # there is a tail
    res = analyze_model("p", tmp_path, AnalysisOptions(batch_size=4, warmup=20, chunk_steps=7, states="h",
                                                       gradient_k=0, min_count=1, top_words=10, k_max=3,
                                                       quantile_cap=3), corpus=ptb, show_progress=False)
    assert res.tokens == ids.numel()
    h = model.trace(ids[:, None])[(0, "h")][:, 0].numpy()
    dh = np.diff(np.vstack([np.zeros((1, 6)), h]), axis=0)                     # the continuous stream's Δh
    keep = systematic_keep(ids.numpy(), 3)
    con = store.connect(tmp_path)
    for word in np.flatnonzero(np.bincount(ids.numpy()) > 3)[:3]:
        rows = store.query(con, "SELECT n, mean, q10, q25, q50, q75, q90 FROM word_responses "
                                "WHERE model_id='p' AND word_id=? ORDER BY unit", [int(word)])
        at = ids.numpy() == word
        assert (rows["n"] == at.sum()).all()
        assert np.allclose(rows["mean"], dh[at].mean(axis=0), atol=1e-5)
        expect = np.quantile(dh[at & keep], [0.1, 0.25, 0.5, 0.75, 0.9], axis=0)
        assert np.allclose(rows[["q10", "q25", "q50", "q75", "q90"]].to_numpy().T, expect, rtol=2e-3, atol=1e-5)


def test_classifier_analysed_at_its_training_max_len(tmp_path, fixtures):
    clf = load_corpus(str(fixtures / "reviews.csv"))
    train_model("clf", ModelConfig("sentiment", "gru", 1, 4, 4), TrainConfig(epochs=1, batch_size=8, max_len=6),
                tmp_path, corpus=clf, show_progress=False)
    res = analyze_model("clf", tmp_path, AnalysisOptions(batch_size=3, states="h", gradient_k=0, min_count=1,
                                                         top_words=10, k_max=3), corpus=clf, show_progress=False)
    lengths = [len(d) for d in clf.splits["test"]]
    assert max(lengths) > 6
    assert res.tokens == sum(min(n, 6) for n in lengths)
    total = store.query(store.connect(tmp_path), "SELECT sum(n) AS n FROM word_responses WHERE model_id='clf' "
                                                 "AND unit = 0")["n"][0]
    assert total == res.tokens


def test_gradient_flow_stays_finite_where_float32_underflows():
    """A contracting vanilla RNN: ‖∂h_t/∂h_(t−k)‖ <= 0.05**k, below float32's range past k ≈ 29, yet > 0 at k = 50."""
    from analytics.gradients import gradient_flow
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig("lm", "rnn", 2, 16, 8, 0.0, 30)).eval()
    with torch.no_grad():
        for layer in range(2):
            w = getattr(model.rnn, f"weight_hh_l{layer}")
            w.mul_(0.05 / torch.linalg.matrix_norm(w, ord=2))
    data = torch.randint(0, 30, (300, 4))
    gf = gradient_flow(model, data, K=50, windows=4, probes=2)
    assert len(gf) == 2 * 50
    norms = gf["grad_norm"].to_numpy()
    assert np.isfinite(norms).all() and (norms > 0).all()
    far = gf[gf["distance"] == 50]["grad_norm"].to_numpy()
    assert (far < 1e-38).all()                                       # float32 would have flushed these to zero
    assert all(np.all(np.diff(g["grad_norm"].to_numpy()) < 0) for _, g in gf.groupby("layer"))
