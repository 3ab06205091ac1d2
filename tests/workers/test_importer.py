"""Bring your own model: a PyTorch-example-style state dict becomes an RNNVis model computing the same thing."""
from __future__ import annotations

import pytest
import torch
from torch import nn

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


def test_a_checkpoint_with_a_malformed_vocabulary_is_refused_with_a_message(tmp_path):
    from models.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint, save_checkpoint
    from models.config import ModelConfig
    from models.rnn import RecurrentModel
    from workers import uploads
    from workers.errors import JobValidationError
    cfg = ModelConfig(vocab_size=3, embed_size=4, hidden_size=4)
    ckpt = {"model_config": dict(cfg.__dict__), "vocab": {"words": 7, "freq": None},
            "state_dict": RecurrentModel(cfg).state_dict()}
    save_checkpoint(tmp_path / "bad.pt", ckpt)
    with pytest.raises(CheckpointError, match="vocabulary is malformed"):
        model_from_checkpoint(read_checkpoint(tmp_path / "bad.pt"))
    with pytest.raises(JobValidationError, match="vocabulary is malformed"):
        uploads.save_model_upload(tmp_path / "store", ("bad.pt", (tmp_path / "bad.pt").read_bytes()))


def test_a_failed_import_leaves_no_checkpoint_and_frees_its_id(tmp_path, fixtures):
    """The import stage writes the checkpoint; the analysis then fails (its corpus upload is gone): the job is
    failed, ``checkpoints/import-*.pt`` is removed and the model id can be used again."""
    import shutil

    from models.checkpoint import checkpoint_file
    from workers import claims, records, uploads
    from workers.errors import JobFailed
    from workers.planning import plan_import_job
    from workers.stages import run_analyze_stage, run_import_stage
    from workers.tracker import DONE, StageContext, worker_name
    root = tmp_path / "store"
    corpus = load_corpus(str(fixtures / "ptb"))
    words = _user_vocab(corpus)
    torch.manual_seed(0)
    torch.save(WordLM(len(words), 6, 5, 1, "gru").state_dict(), tmp_path / "model.pt")
    up_c = uploads.save_corpus_upload(root, [(p.name,
                                              p.read_bytes()) for p in sorted((fixtures / "ptb").glob("*.txt"))],
                                      "ptb", owner="ann")
    up_m = uploads.save_model_upload(root, ("model.pt", (tmp_path / "model.pt").read_bytes()),
                                     ("vocab.txt", ("\n".join(words) + "\n").encode()), owner="ann")
    request = {"model_upload": up_m.upload_id, "corpus": f"upload:{up_c.upload_id}"}
    rec = plan_import_job(root, request, submitted_by="ann")
    assert rec.model_id.startswith("import-")
    claims.claim_model_id(root, rec.model_id, rec.job_id)
    records.write_job(root, rec)
    ctx = StageContext(root, rec.job_id, worker_name(), device="cpu", heartbeat_s=30)
    assert run_import_stage(ctx) == DONE and checkpoint_file(root, rec.model_id).exists()
    shutil.rmtree(root / uploads.UPLOAD_DIR / up_c.upload_id)
    with pytest.raises(JobFailed):
        run_analyze_stage(ctx)
    assert records.read_job(root, rec.job_id).status == "failed"
    assert not checkpoint_file(root, rec.model_id).exists()
    assert list((root / "checkpoints").glob("import-*.pt")) == []
    assert claims.claim_holder(root, rec.model_id) is None
    again = plan_import_job(root, {**request, "corpus": "brown", "model_id": rec.model_id}, submitted_by="ann")
    assert again.model_id == rec.model_id   # the id is free again (brown: the deleted upload cannot be chosen)


def test_a_half_precision_state_dict_is_inspected_as_stored_and_imported_as_float32(tmp_path, fixtures):
    """Inspection keeps the tensors mapped from the file (no float32 copies in the web request); the import
    converts them."""
    corpus = load_corpus(str(fixtures / "ptb"))
    words = _user_vocab(corpus)
    torch.save(WordLM(len(words), 6, 5, 1, "gru").half().state_dict(), tmp_path / "half.pt")
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    plan = inspect_model(tmp_path / "half.pt", tmp_path / "vocab.txt")
    assert plan.tensors["rnn.weight_hh_l0"].dtype == torch.float16
    import_model("half", tmp_path / "half.pt", tmp_path / "vocab.txt", tmp_path / "store", corpus=corpus,
                 corpus_spec=str(fixtures / "ptb"))
    model, _ = load_model("half", store=tmp_path / "store")
    assert model.rnn.weight_hh_l0.dtype == torch.float32
