import pytest
import torch

from models import load_model
from models.checkpoint import CheckpointError, checkpoint_file, read_checkpoint
from models.config import ConfigError, ModelConfig, TrainConfig, apply_overrides, get_preset
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.train import batchify, epoch_lr, lm_stream, make_optimizer, train_lm_epoch, train_model


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
    assert (small.train.loss, small.train.schedule) == ("sequence", "step")     # Zaremba: loss summed over time
    ex = get_preset("medium").train
    assert (ex.loss, ex.schedule, ex.lr, ex.clip, ex.lr_decay, ex.epochs) == ("token", "plateau", 20.0, 0.25, 0.25, 40)
    assert get_preset("lstm-large").model.hidden_size == 1500
    assert get_preset("sentiment-gru").model.hidden_size == 50


def _one_window(loss: str, lr: float, ptb):
    corpus_vocab = __import__("models.text", fromlist=["Vocab"]).Vocab.build(ptb.tokens("train"), 50)
    data = batchify(lm_stream(ptb, corpus_vocab, "train", 4 * 9), 4)            # one window of 8 steps
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig("lm", "lstm", 1, 8, 6, vocab_size=len(corpus_vocab)))
    tc = TrainConfig(loss=loss, lr=lr, clip=0.0, bptt=8, batch_size=4)
    train_lm_epoch(model, make_optimizer(model, tc), data, tc)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_sequence_loss_is_the_token_mean_times_the_steps(ptb):
    """Zaremba's lr on the loss summed over T steps is lr*T on the token mean."""
    assert torch.allclose(_one_window("sequence", 0.5, ptb), _one_window("token", 0.5 * 8, ptb), atol=1e-6)
    assert not torch.allclose(_one_window("sequence", 0.5, ptb), _one_window("token", 0.5, ptb), atol=1e-6)


def test_schedules():
    step = TrainConfig(schedule="step", lr=1.0, lr_decay=0.5, decay_after=2)
    assert [epoch_lr(step, e, 99.0) for e in (1, 2, 3, 4)] == [1.0, 1.0, 0.5, 0.25]
    assert epoch_lr(TrainConfig(schedule="plateau"), 7, 1.25) == 1.25


def test_plateau_divides_the_rate_when_validation_stops_improving(tmp_path, ptb):
    seen = []
    # Steps of norm <= lr * clip = 1e-20 cannot change float32 weights: validation never improves after epoch 1.
    train_model("p", ModelConfig("lm", "rnn", 1, 8, 6), TrainConfig(epochs=3, batch_size=4, bptt=8, lr=1e-8,
                                                                    clip=1e-12, lr_decay=0.25),
                tmp_path, corpus=ptb, show_progress=False,
                on_progress=lambda d: seen.append((d["epoch"], d["lr"], d.get("valid"))))
    per_epoch = {e: lr for e, lr, valid in seen if valid is not None}
    valid = [v["loss"] for e, lr, v in seen if v is not None]
    for e in (2, 3):
        improved = valid[e - 2] < min(valid[: e - 2], default=float("inf"))
        assert per_epoch[e] == per_epoch[e - 1] * (1 if improved else 0.25)
    assert per_epoch == {1: 1e-8, 2: 1e-8, 3: 0.25e-8}          # epoch 2 was no better than epoch 1


def test_old_checkpoints_keep_their_recipe():
    old = TrainConfig.from_dict({"lr": 1.0, "clip": 5.0})
    assert (old.loss, old.schedule, old.lr) == ("token", "step", 1.0)
