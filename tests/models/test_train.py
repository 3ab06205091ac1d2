import pytest
import torch

from models import load_model
from models.checkpoint import CheckpointError, checkpoint_file, read_checkpoint
from models.config import ConfigError, ModelConfig, TrainConfig, apply_overrides, get_preset
from models.corpora import load_corpus
from models.train import train_model


@pytest.fixture(scope="module")
def ptb(fixtures):
    return load_corpus(str(fixtures / "ptb"))


def test_train_writes_a_weights_only_checkpoint_with_metrics(tmp_path, ptb):
    res = train_model("m1", ModelConfig("lm", "gru", 2, 8, 6), TrainConfig(epochs=2, batch_size=4, bptt=8),
                      tmp_path, corpus=ptb, show_progress=False)
    ckpt = torch.load(checkpoint_file(tmp_path, "m1"), weights_only=True)
    assert ckpt["complete"] and ckpt["model_config"]["cell"] == "gru"
    splits = [(m["epoch"], m["split"]) for m in res.metrics]
    assert splits == [(1, "train"), (1, "valid"), (2, "train"), (2, "valid"), (2, "test")]
    assert all(m["perplexity"] > 1 for m in res.metrics)
    assert res.metrics[0]["tokens_per_s"] > 0
    model, vocab = load_model("m1", store=tmp_path)
    assert vocab.encode(["the"]) != [vocab.unk_id]
    assert not model.training


def test_resume_continues_from_the_last_epoch(tmp_path, ptb):
    cfg = TrainConfig(epochs=1, batch_size=4, bptt=8)
    train_model("m2", ModelConfig("lm", "lstm", 1, 8, 6), cfg, tmp_path, corpus=ptb, show_progress=False)
    cfg.epochs = 3
    res = train_model("m2", ModelConfig(), cfg, tmp_path, corpus=ptb, resume=True, show_progress=False)
    epochs = [m["epoch"] for m in res.metrics if m["split"] == "train"]
    assert epochs == [1, 2, 3] and res.epochs_run == 2
    assert read_checkpoint(checkpoint_file(tmp_path, "m2"))["resume"]["epoch"] == 3


def test_classifier_trains(tmp_path, fixtures):
    corpus = load_corpus(str(fixtures / "reviews.csv"))
    res = train_model("c1", ModelConfig("sentiment", "lstm", 1, 8, 6),
                      TrainConfig(epochs=2, batch_size=8, optimizer="adam", lr=0.01), tmp_path, corpus=corpus,
                      show_progress=False)
    assert 0 <= res.metrics[-1]["accuracy"] <= 1


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "checkpoints" / "broken.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model("broken", store=tmp_path)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "checkpoints" / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an RNNVis checkpoint"):
        load_model("foreign", store=tmp_path)
    with pytest.raises(CheckpointError, match="unknown model 'nope'"):
        load_model("nope", store=tmp_path)


def test_task_mismatch_and_bad_values(tmp_path, ptb):
    with pytest.raises(ValueError, match="pick a sentiment corpus"):
        train_model("x", ModelConfig("sentiment", "gru", 1, 4, 4), TrainConfig(epochs=1), tmp_path, corpus=ptb,
                    show_progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=10**6).validate()
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("lstm-huge")
    p = get_preset("lstm-small")
    with pytest.raises(ConfigError, match="unknown setting"):
        apply_overrides(p.model, p.train, {"hiden_size": 3})
    with pytest.raises(ValueError, match="invalid model id"):
        train_model("../evil", ModelConfig(), TrainConfig(), tmp_path, corpus=ptb, show_progress=False)
    assert not (tmp_path / "checkpoints").exists()


def test_presets_match_the_papers():
    small = get_preset("lstm-small")
    assert (small.model.layers, small.model.hidden_size, small.train.lr, small.train.clip, small.train.bptt,
            small.train.batch_size, small.train.epochs, small.train.lr_decay, small.train.decay_after) == \
        (2, 200, 1.0, 5.0, 35, 20, 13, 0.5, 4)
    assert get_preset("lstm-large").model.hidden_size == 1500
    assert get_preset("sentiment-gru").model.hidden_size == 50
