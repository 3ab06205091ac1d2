"""A 2-layer LSTM whose second layer keeps its state for long: the stored responses equal the continuous stream.

The analysis traces a language model's split as parallel pieces.  Here the
second layer's forget gates are set open by hand (bias +4: it forgets a start
in ~600 tokens; +6: in thousands, longer than any piece), so a warm-up of 200
tokens is far from enough.  The reference is independent of the analysis'
trace: ``nn.LSTMCell``s built from the model's weights walk the whole split as
ONE sequence from zero state, one token at a time.  Every (word, unit) pair of
h and c (Δ) and of the gates, in both layers, words of every n, must match
within 1e-4 + 1e-3·|mean| (std likewise), the quantiles of the same
systematic sample within one float16 step + 1e-4; the stored token states of
the last layer's h within one float16 step.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from analytics import store
from analytics import token_states as ts
from analytics.pipeline import AnalysisOptions, analyze_model
from analytics.quantiles import systematic_keep
from models.checkpoint import checkpoint_file, model_from_checkpoint, read_checkpoint, save_checkpoint
from models.config import ModelConfig, TrainConfig
from models.corpora import Corpus
from models.train import lm_stream, train_model

H = 12
CAP = 40


def _corpus(vocab: int = 40, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    p = 1.0 / np.arange(1, vocab + 1)
    splits = {}
    for split, lines in (("train", 20), ("valid", 4), ("test", 300)):
        splits[split] = [[words[i] for i in rng.choice(vocab, int(rng.integers(5, 30)), p=p / p.sum())] + ["<eos>"]
                         for _ in range(lines)]
    return Corpus("skewed", "lm", splits).validate()


@torch.no_grad()
def _reference(model, ids: torch.Tensor) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, state): [N, H]}: Δh, Δc and the gate activations of the split as one stream from zero."""
    out, x = {}, model.embed(ids)
    for layer in range(model.cfg.layers):
        w = {n: getattr(model.rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        cell = nn.LSTMCell(x.shape[1], H)
        for n, p in w.items():
            getattr(cell, n).copy_(p)
        hs, cs = torch.zeros(len(ids) + 1, H), torch.zeros(len(ids) + 1, H)
        h, c = torch.zeros(1, H), torch.zeros(1, H)
        for t in range(len(ids)):
            h, c = cell(x[t:t + 1], (h, c))
            hs[t + 1], cs[t + 1] = h[0], c[0]
        pre = x @ w["weight_ih"].t() + w["bias_ih"] + hs[:-1] @ w["weight_hh"].t() + w["bias_hh"]
        i, f, g, o = pre.chunk(4, dim=1)
        out.update({(layer, "h"): hs[1:] - hs[:-1], (layer, "c"): cs[1:] - cs[:-1], (layer, "i"): i.sigmoid(),
                    (layer, "f"): f.sigmoid(), (layer, "g"): g.tanh(), (layer, "o"): o.sigmoid(),
                    (layer, "state_h"): hs[1:]})
        x = hs[1:]
    return {k: v.numpy() for k, v in out.items()}


def _per_word(ids: np.ndarray, values: np.ndarray, keep: np.ndarray):
    words = np.unique(ids)
    mean = np.stack([values[ids == w].astype(np.float64).mean(0) for w in words])
    std = np.stack([values[ids == w].astype(np.float64).std(0, ddof=1) if (ids == w).sum() > 1
                    else np.zeros(values.shape[1]) for w in words])
    half = values.astype(np.float16).astype(np.float64)
    q = np.stack([np.quantile(half[(ids == w) & keep], [0.1, 0.25, 0.5, 0.75, 0.9], axis=0) for w in words], 1)
    return words, mean, std, q


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    corpus = _corpus()
    train_model("base", ModelConfig("lm", "lstm", 2, H, 8), TrainConfig(corpus="skewed", epochs=1, batch_size=4,
                                                                        bptt=10, vocab_size=60),
                root, corpus=corpus, show_progress=False)
    return root, corpus, read_checkpoint(checkpoint_file(root, "base"))


@pytest.mark.parametrize("forget_bias,batch_size", [(4.0, 8), (6.0, 16)])
def test_every_layer_equals_the_continuous_stream(trained, forget_bias, batch_size):
    root, corpus, ckpt = trained
    model, vocab = model_from_checkpoint(ckpt)
    with torch.no_grad():                                # layer 1 keeps its state: f = sigmoid(bias) ~ 0.98, 0.998
        model.rnn.bias_ih_l1[H:2 * H] = forget_bias
        model.rnn.bias_hh_l1[H:2 * H] = 0.0
    model_id = f"long{int(forget_bias)}"
    save_checkpoint(checkpoint_file(root, model_id), {**ckpt, "state_dict": model.state_dict()})
    ids = lm_stream(corpus, vocab, "test")
    assert ids.numel() > 200 * batch_size                                     # pieces longer than the warm-up
    res = analyze_model(model_id, root, AnalysisOptions(states="all", batch_size=batch_size, quantile_cap=CAP,
                                                        top_words=20, k_max=3, gradient_k=0),
                        corpus=corpus, show_progress=False)
    assert res.tokens == ids.numel()
    ref = _reference(model.eval(), ids)
    keep = systematic_keep(ids.numpy(), CAP)
    con = store.connect(root)
    for layer in (0, 1):
        for state in "hcifgo":
            words, mean, std, q = _per_word(ids.numpy(), ref[(layer, state)], keep)
            df = store.query(con, "SELECT word_id, mean, std, q10, q25, q50, q75, q90 FROM word_responses WHERE "
                                  "model_id = ? AND layer = ? AND state = ? ORDER BY word_id, unit",
                             [model_id, layer, state])
            assert np.array_equal(df["word_id"].to_numpy()[::H], words)
            got_m, got_s = (df[c].to_numpy().reshape(-1, H) for c in ("mean", "std"))
            got_q = np.stack([df[c].to_numpy().reshape(-1, H) for c in ("q10", "q25", "q50", "q75", "q90")])
            where = (layer, state)
            assert (np.abs(got_m - mean) <= 1e-4 + 1e-3 * np.abs(mean)).all(), (where, np.abs(got_m - mean).max())
            assert (np.abs(got_s - std) <= 1e-4 + 1e-3 * np.abs(std)).all(), (where, np.abs(got_s - std).max())
            step = np.spacing(np.abs(q).astype(np.float16)).astype(np.float64)
            assert (np.abs(got_q - q) <= step + 1e-4).all(), (where, np.abs(got_q - q).max())
    states = ts.unit_series(con, model_id, 1, "h", range(H), ids.numel())   # the stored token states
    want = ref[(1, "state_h")]
    assert (np.abs(states - want) <= np.spacing(np.abs(want).astype(np.float16)) + 1e-4).all()
