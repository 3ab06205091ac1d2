"""Every unit's top contexts (``unit_contexts``): a planted unit's, and every unit's against a batch-1 trace."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from analytics.unit_contexts import RunningTop
from models.checkpoint import checkpoint_file, model_from_checkpoint, read_checkpoint, save_checkpoint
from models.config import ModelConfig, TrainConfig
from models.corpora import Corpus
from models.runtime import single_sequence_threads
from models.train import lm_stream, train_model
from tests.analytics.test_continuous import _markov_corpus


def _contexts(root, model_id: str):
    return store.query(store.connect(root), "SELECT * FROM unit_contexts WHERE model_id = ? "
                                            "ORDER BY layer, state, unit, kind, rank", [model_id])


def test_running_top_is_torch_topk_and_survives_removals():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(700, 9, generator=gen)
    for largest in (True, False):
        run = RunningTop(10, 9, 2, largest=largest)
        for i in range(0, 700, 50):
            run.update(x[i:i + 50], torch.arange(i, i + 50), torch.full((50,), int(100 <= i < 250)))
        run.remove(torch.arange(100, 250), torch.tensor([1]))                # a window traced again ...
        y = x.clone()
        y[100:250] = torch.randn(150, 9, generator=gen)
        run.update(y[100:250], torch.arange(100, 250), torch.ones(150, dtype=torch.long))   # ... with new values
        vals, pos, valid = run.result(5)
        want = torch.topk(y, 5, dim=0, largest=largest)
        for u in range(9):
            n = int(valid[:, u].sum())
            assert n >= 3 and list(pos[:n, u]) == want.indices[:n, u].tolist()
            assert np.allclose(vals[:n, u], want.values[:n, u].numpy())


def _planted_corpus(triggers: int = 15, length: int = 1500, seed: int = 0) -> tuple[Corpus, list[int]]:
    """Random words with ``trigger`` planted ``triggers`` times in the test split; returns its positions."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]

    def text(n, plant):
        toks = [words[i] for i in rng.integers(0, 30, n)]
        where = sorted(rng.choice(np.arange(5, n - 5), plant, replace=False).tolist()) if plant else []
        for p in where:
            toks[p] = "trigger"
        return [toks[i:i + 25] for i in range(0, n, 25)]
    splits = {"train": text(800, 10), "valid": text(200, 2), "test": text(length, triggers)}
    return Corpus("planted", "lm", splits).validate(), []


def test_a_unit_that_fires_only_after_the_trigger_has_exactly_those_top_contexts(tmp_path):
    corpus, _ = _planted_corpus()
    train_model("planted", ModelConfig("lm", "rnn", 1, 8, 6), TrainConfig(corpus="planted", epochs=1, batch_size=8,
                                                                          bptt=20, vocab_size=100),
                tmp_path, corpus=corpus, show_progress=False)
    path = checkpoint_file(tmp_path, "planted")
    ckpt = read_checkpoint(path)
    model, vocab = model_from_checkpoint(ckpt)
    trig = vocab.index["trigger"] if hasattr(vocab, "index") else vocab.words.index("trigger")
    with torch.no_grad():                       # unit 0: tanh(5) after the trigger, tanh(-1) after any other word
        model.embed.weight[:, 0] = 0
        model.embed.weight[trig, 0] = 3
        model.rnn.weight_ih_l0[0] = 0
        model.rnn.weight_ih_l0[0, 0] = 2
        model.rnn.weight_hh_l0[0] = 0
        model.rnn.bias_ih_l0[0], model.rnn.bias_hh_l0[0] = -1, 0
        w_hh = model.rnn.weight_hh_l0
        w_hh.mul_(0.9 / torch.linalg.matrix_norm(w_hh, ord=2))
    ckpt["state_dict"] = model.state_dict()
    save_checkpoint(path, ckpt)
    stream = lm_stream(corpus, vocab, "test").numpy()
    planted = np.flatnonzero(stream == trig)
    assert len(planted) == 15
    opts = AnalysisOptions(batch_size=4, warmup=0, chunk_steps=50, token_states="none", min_count=2, top_words=20,
                           k_max=3, gradient_k=0)
    analyze_model("planted", tmp_path, opts, corpus=corpus, show_progress=False)
    df = _contexts(tmp_path, "planted")
    unit = df[(df.layer == 0) & (df.state == "h") & (df.unit == 0)]
    for kind, want in (("h_top", planted), ("dh_top", planted), ("dh_bottom", planted + 1)):
        got = unit[unit.kind == kind].sort_values("rank")
        assert len(got) == 20
        assert sorted(got["position"][:15]) == sorted(want.tolist()), kind
        assert abs(got["value"].iloc[15]) < abs(got["value"].iloc[14]) - 0.1, kind
    words = store.query(store.connect(tmp_path), "SELECT c.word FROM unit_contexts u JOIN corpus_tokens c "
                        "USING (model_id, position) WHERE model_id = ? AND layer = 0 AND state = 'h' AND unit = 0 "
                        "AND kind = 'h_top' AND rank <= 15", ["planted"])
    assert set(words["word"]) == {"trigger"}                # corpus_tokens is there without token states


def _reference(model, ids: torch.Tensor) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, h|c): [N, H]} the split as one stream from zero, one token at a time through torch's nn.LSTM."""
    cfg = model.cfg
    state, rows = model.init_state(1), []
    with torch.no_grad(), single_sequence_threads():
        emb = model.embed(ids[:, None])
        for t in range(ids.numel()):
            _, state = model.rnn(emb[t:t + 1], state)
            rows.append((state[0][:, 0].clone(), state[1][:, 0].clone()))
    return {(layer, s): torch.stack([r[i][layer] for r in rows]).numpy()
            for layer in range(cfg.layers) for i, s in enumerate(("h", "c"))}


@pytest.mark.parametrize("warmup", [0, 200])
def test_every_units_top_contexts_equal_a_batch1_trace_of_the_whole_split(tmp_path, warmup):
    corpus = _markov_corpus(lines={"train": 40, "valid": 5, "test": 150})
    train_model("lstm", ModelConfig("lm", "lstm", 2, 12, 8), TrainConfig(corpus="markov", epochs=1, batch_size=8,
                                                                        bptt=20, vocab_size=100),
                tmp_path, corpus=corpus, show_progress=False)
    model, vocab = model_from_checkpoint(read_checkpoint(checkpoint_file(tmp_path, "lstm")))
    ids = lm_stream(corpus, vocab, "test")
    ref = _reference(model, ids)
    # small pieces, started cold: the corrections of the exact trace retrace many windows
    opts = AnalysisOptions(batch_size=16, warmup=warmup, chunk_steps=37, token_states="none", min_count=2,
                           top_words=20, k_max=3, gradient_k=0)
    analyze_model("lstm", tmp_path, opts, corpus=corpus, show_progress=False)
    df = _contexts(tmp_path, "lstm")
    lists = 2 * 2 * 12 * 4
    assert set(df.state) == {"h", "c"}
    # Warmed-up starts (the default) leave every list whole; pieces started cold have an extreme transient
    # that the corrections remove, and a list keeps only what it can prove: fewer rows, never wrong ones.
    assert len(df) == lists * 20 if warmup else len(df) >= lists * 2
    exact = 0
    for (layer, state, unit, kind), g in df.groupby(["layer", "state", "unit", "kind"]):
        series = ref[(layer, state)][:, unit]
        v = series if kind.startswith("h_") else np.diff(series, prepend=0.0)
        sign = 1.0 if kind.endswith("top") else -1.0
        order = np.argsort(-sign * v, kind="stable")
        got = g.sort_values("rank")
        assert list(got["rank"]) == list(range(1, len(got) + 1))
        assert np.allclose(got["value"], v[got["position"]], atol=1e-5)       # the stored value is the stream's
        kth = sign * v[order[len(got) - 1]]
        assert (sign * v[got["position"]] >= kth - 1e-5).all(), (layer, state, unit, kind)   # and its top ranks
        exact += list(got["position"]) == order[:len(got)].tolist()
    assert exact >= 0.95 * lists                                              # same order but for near-ties


def test_gates_top_contexts_and_their_change_across_piece_starts(tmp_path):
    """A GRU with every state traced: the gates' values and changes (the change at a piece's first token taken
    against the piece before) equal a batch-1 trace's; no change at the stream's first token."""
    corpus = _markov_corpus(lines={"train": 40, "valid": 5, "test": 120})
    train_model("gru", ModelConfig("lm", "gru", 1, 10, 8), TrainConfig(corpus="markov", epochs=1, batch_size=8,
                                                                      bptt=20, vocab_size=100),
                tmp_path, corpus=corpus, show_progress=False)
    model, vocab = model_from_checkpoint(read_checkpoint(checkpoint_file(tmp_path, "gru")))
    ids = lm_stream(corpus, vocab, "test")
    ref = {k: v[:, 0].numpy() for k, v in model.trace(ids[:, None]).items()}   # [N, H] per (layer, state)
    opts = AnalysisOptions(batch_size=16, chunk_steps=29, states="all", token_states="none", min_count=2,
                           top_words=20, k_max=3, gradient_k=0)
    analyze_model("gru", tmp_path, opts, corpus=corpus, show_progress=False)
    df = _contexts(tmp_path, "gru")
    assert set(df.state) == {"h", "z", "r", "n"}
    for (layer, state, unit, kind), g in df.groupby(["layer", "state", "unit", "kind"]):
        series = ref[(layer, state)][:, unit].astype(np.float64)
        prior = 0.0 if state == "h" else np.nan
        v = series if kind.startswith("h_") else np.diff(series, prepend=prior)
        sign = 1.0 if kind.endswith("top") else -1.0
        v = np.where(np.isnan(v), -np.inf, sign * v)
        got = g.sort_values("rank")
        assert len(got) == 20
        if state != "h" and kind.startswith("dh"):
            assert 0 not in set(got["position"])                          # a gate has no value before the first
        assert np.allclose(sign * got["value"], v[got["position"]], atol=1e-5), (state, unit, kind)
        assert (v[got["position"]] >= np.sort(v)[::-1][19] - 1e-5).all(), (state, unit, kind)
