"""Per-token loss and classifier outcomes, against independent references.

The references share nothing with :mod:`analytics.losses` but the weights: a batch-1 step loop with torch's
own cells (``nn.LSTMCell``/``nn.GRUCell``/``nn.RNNCell``) over the whole split as one sequence, and pandas
group-bys for the per-word moments.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analytics import losses
from models.config import ModelConfig
from models.rnn import RecurrentModel

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


def _model(task: str, cell: str, vocab: int = 23, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    model = RecurrentModel(ModelConfig(task, cell, 2, 12, 8, vocab_size=vocab, num_classes=3))
    for p in model.parameters():          # larger weights than the default init: states that carry far
        nn.init.uniform_(p, -0.6, 0.6)
    return model.eval()


def _step_loop_losses(model: RecurrentModel, stream: torch.Tensor) -> np.ndarray:
    """-log p(x_t | x_<t) by a plain loop of torch's cells, one token at a time, from a zero state."""
    cfg = model.cfg
    cells = []
    for layer in range(cfg.layers):
        cell = CELLS[cfg.cell](cfg.embed_size if layer == 0 else cfg.hidden_size, cfg.hidden_size)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(model.rnn, f"{name}_l{layer}").data)
        cells.append(cell)
    h = [torch.zeros(1, cfg.hidden_size) for _ in cells]
    c = [torch.zeros(1, cfg.hidden_size) for _ in cells]
    out = []
    with torch.no_grad():
        for t in range(stream.numel() - 1):
            x = model.embed.weight[stream[t]][None]
            for i, cell in enumerate(cells):
                if cfg.cell == "lstm":
                    h[i], c[i] = cell(x, (h[i], c[i]))
                else:
                    h[i] = cell(x, h[i])
                x = h[i]
            logp = torch.log_softmax(model.head(x)[0].double(), dim=0)
            out.append(-float(logp[stream[t + 1]]))
    return np.array(out)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_token_losses_equal_a_step_loop_over_the_whole_stream(cell):
    model = _model("lm", cell)
    stream = torch.randint(0, 23, (701,), generator=torch.Generator().manual_seed(1))
    got = losses.lm_token_losses(model, stream, pieces=7, window=20)     # 7 pieces read side by side
    want = _step_loop_losses(model, stream)
    assert got.shape == want.shape == (700,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_word_loss_rows_are_the_per_word_moments_of_the_token_losses():
    model = _model("lm", "lstm")
    stream = torch.randint(0, 23, (500,), generator=torch.Generator().manual_seed(2))
    nll = losses.lm_token_losses(model, stream, pieces=4, window=25)
    words = [f"w{i}" for i in range(23)]
    frame = losses.word_loss_frame("m", stream, nll, words).set_index("word_id")
    ref = pd.DataFrame({"w": stream[1:].numpy(), "nll": _step_loop_losses(model, stream)}).groupby("w")["nll"]
    assert sorted(frame.index) == sorted(ref.groups)
    assert (frame["n"] == ref.size()).all() and frame["n"].sum() == 499
    np.testing.assert_allclose(frame["nll_mean"], ref.mean(), rtol=1e-4)
    np.testing.assert_allclose(frame["nll_std"], ref.std(ddof=1).fillna(0.0), rtol=1e-3, atol=1e-6)
    assert list(frame.loc[[3], "word"]) == ["w3"]
    tokens = losses.token_loss_frame("m", stream, nll)
    assert tokens["position"].tolist() == list(range(1, 500)) and (tokens["word_id"] == stream[1:].numpy()).all()


def test_classifier_outcomes_match_one_document_at_a_time():
    model = _model("sentiment", "gru")
    gen = torch.Generator().manual_seed(3)
    docs = [torch.randint(0, 23, (int(n),), generator=gen).tolist() for n in torch.randint(1, 30, (40,))]
    probs = losses.classifier_outcomes(model, docs, batch_size=7)    # batched by length, padded
    with torch.no_grad():
        want = np.stack([torch.softmax(model(torch.tensor(d)[:, None])[0][0].double(), 0).numpy() for d in docs])
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
    labels = [i % 3 for i in range(40)]
    metrics = losses.class_metrics_frame("m", labels, probs, ["a", "b", "c"]).set_index("label")
    pred = want.argmax(1)
    for c, name in enumerate("abc"):
        mine = np.array(labels) == c
        assert metrics.loc[name, "n"] == mine.sum()
        assert metrics.loc[name, "accuracy"] == pytest.approx((pred[mine] == c).mean())
        assert metrics.loc[name, "mean_p_true"] == pytest.approx(want[mine, c].mean())
    confusion = losses.class_confusion_frame("m", labels, probs, ["a", "b", "c"])
    assert len(confusion) == 9 and confusion["n"].sum() == 40
    assert confusion.set_index(["label", "predicted"]).loc[("b", "b"), "n"] == ((np.array(labels) == 1)
                                                                                 & (pred == 1)).sum()


def test_a_model_that_remembers_longer_than_the_window_is_still_exact():
    """Forget gates held open: a piece's guessed start does not fade within the window, so pieces are re-read."""
    model = _model("lm", "lstm")
    H = model.cfg.hidden_size
    with torch.no_grad():
        for layer in range(model.cfg.layers):
            for name in ("bias_ih", "bias_hh"):
                getattr(model.rnn, f"{name}_l{layer}")[H:2 * H] = 6.0        # forget gate ~ 1
    stream = torch.randint(0, 23, (600,), generator=torch.Generator().manual_seed(4))
    got = losses.lm_token_losses(model, stream, pieces=6, window=10)
    np.testing.assert_allclose(got, _step_loop_losses(model, stream), rtol=1e-4, atol=1e-5)


def test_short_streams():
    model = _model("lm", "gru")
    for n in (1, 2, 30):
        stream = torch.arange(n) % 23
        np.testing.assert_allclose(losses.lm_token_losses(model, stream), _step_loop_losses(model, stream),
                                   rtol=1e-4, atol=1e-5)
