"""Bring your own model: a PyTorch-example-style state dict becomes an RNNVis model computing the same thing."""
from __future__ import annotations

import torch
from torch import nn

import pytest

from models.checkpoint import load_model
from models.corpora import load_corpus
from models.importer import ModelImportError, import_model, inspect_model


class WordLM(nn.Module):
    """Like pytorch/examples word_language_model: encoder, rnn, decoder."""

    def __init__(self, vocab: int, emb: int, hidden: int, layers: int, cell: str):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](emb, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.rnn(self.encoder(x))
        return self.decoder(out)


def _user_vocab(corpus) -> list[str]:
    words = sorted({w for w in corpus.tokens("train")})
    return ["Hello", "<unk>"] + [w for w in words if w not in ("<unk>", "hello")]  # <eos> somewhere inside


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1), ("rnn", 1)])
def test_state_dict_import_matches_the_original(tmp_path, fixtures, cell, layers):
    corpus = load_corpus(str(fixtures / "ptb"))
    words = _user_vocab(corpus)
    torch.manual_seed(0)
    user = WordLM(len(words), 6, 5, layers, cell).eval()
    torch.save(user.state_dict(), tmp_path / "model.pt")
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    plan = inspect_model(tmp_path / "model.pt", tmp_path / "vocab.txt")
    assert (plan.config.cell, plan.config.layers, plan.config.hidden_size, plan.config.task) == (cell, layers, 5, "lm")
    res = import_model("byo", tmp_path / "model.pt", tmp_path / "vocab.txt", tmp_path / "store", corpus=corpus,
                       corpus_spec=str(fixtures / "ptb"))
    assert any("<pad>" in w for w in res.warnings)
    model, vocab = load_model("byo", store=tmp_path / "store")
    sentence = ["the", "<unk>", "<eos>", "Hello"] + [w for w in words[3:8]]
    ours = torch.tensor(vocab.encode(sentence))[:, None]
    theirs = torch.tensor([words.index(w) for w in sentence])[:, None]  # "Hello" is read as "hello"
    with torch.no_grad():
        a = model(ours)[0][:, 0]                        # [T, V_ours]
        b = user(theirs)[:, 0]                          # [T, V_user]
    cols = [words.index(w) for w in ("the", "<eos>", "<unk>")]
    our_cols = [vocab.index[w] for w in ("the", "<eos>", "<unk>")]
    torch.testing.assert_close(a[:, our_cols], b[:, cols], rtol=1e-5, atol=1e-5)
    assert vocab.words[:3] == ["<pad>", "<unk>", "<eos>"] and "hello" in vocab.index


def test_import_refusals(tmp_path, fixtures):
    (tmp_path / "v.txt").write_text("a\nb\nc\n")
    bi = nn.ModuleDict({"emb": nn.Embedding(3, 4), "rnn": nn.LSTM(4, 4, bidirectional=True), "out": nn.Linear(8, 3)})
    torch.save(bi.state_dict(), tmp_path / "bi.pt")
    with pytest.raises(ModelImportError, match="bidirectional"):
        inspect_model(tmp_path / "bi.pt", tmp_path / "v.txt")
    ok = WordLM(5, 4, 4, 1, "gru")
    torch.save(ok.state_dict(), tmp_path / "ok.pt")
    with pytest.raises(ModelImportError, match="3 words but the embedding has 5 rows") as e:
        inspect_model(tmp_path / "ok.pt", tmp_path / "v.txt")
    assert e.value.field == "vocab"
    with pytest.raises(ModelImportError, match="needs its vocabulary"):
        inspect_model(tmp_path / "ok.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelImportError, match="not a PyTorch file"):
        inspect_model(tmp_path / "junk.pt")
    torch.save(ok, tmp_path / "whole.pt")  # a pickled module, not a state dict: refused by weights_only
    with pytest.raises(ModelImportError, match="state_dict"):
        inspect_model(tmp_path / "whole.pt", tmp_path / "v.txt")
