"""Training: language models (truncated BPTT over one stream) and classifiers.

Per epoch: loss and perplexity (LM) or accuracy (classifier) on train and
validation, tokens per second and wall time; test figures at the end.  A
checkpoint is written atomically after every epoch, so training resumes from
the last finished epoch and a killed or cancelled run leaves a resumable
checkpoint or nothing.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .checkpoint import check_model_id, checkpoint_file, read_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .corpora import Corpus, load_corpus
from .rnn import RecurrentModel
from .runtime import torch_threads
from .task_kinds import (
    TaskKind,
    TrainingCancelled,
    batchify,
    evaluate_classifier,
    evaluate_lm,
    lm_stream,
    task_kind,
    train_lm_epoch,
)
from .text import Vocab

#: lm_stream, batchify, the evaluations, train_lm_epoch and TrainingCancelled live in models.task_kinds; they are
#: named here too for the callers that import them from models.train (the pipeline, the importer, the benches).
__all__ = ["TrainResult", "TrainingCancelled", "default_device", "make_optimizer", "epoch_lr", "train_model",
           "lm_stream", "batchify", "evaluate_lm", "evaluate_classifier", "train_lm_epoch"]

log = logging.getLogger(__name__)
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model_id: str
    checkpoint: Path
    metrics: list[dict[str, Any]]
    epochs_run: int
    wall_s: float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- training
def make_optimizer(model: RecurrentModel, tc: TrainConfig) -> torch.optim.Optimizer:
    if tc.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)


def epoch_lr(tc: TrainConfig, epoch: int, plateau_lr: float) -> float:
    """The learning rate of ``epoch`` (1-based).

    ``step``: lr × lr_decay^(epoch − decay_after) once past ``decay_after``.
    ``plateau``: ``plateau_lr``, which the loop multiplies by lr_decay after
    every epoch whose validation loss is no better than the best so far.
    """
    if tc.schedule == "plateau":
        return plateau_lr
    return tc.lr * tc.lr_decay ** max(0, epoch - tc.decay_after)


def train_model(model_id: str, model_cfg: ModelConfig, train_cfg: TrainConfig, store_root: str | os.PathLike, *,
                corpus: Corpus | None = None, name: str | None = None, created_by: str = "cli",
                resume: bool = False, device: torch.device | None = None, show_progress: bool = True,
                on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                threads: int | None = None) -> TrainResult:
    """Train (or resume) a model and write its checkpoint into the store.

    ``on_progress`` receives dicts with epoch, epochs, step, steps, loss,
    tokens_per_s; ``should_stop`` is polled every step (cancel); ``threads``
    sets torch's CPU threads (default: see :mod:`models.runtime`).
    """
    with torch_threads(model_cfg.hidden_size, threads):
        return _train_model(model_id, model_cfg, train_cfg, store_root, corpus=corpus, name=name,
                            created_by=created_by, resume=resume, device=device, show_progress=show_progress,
                            on_progress=on_progress, should_stop=should_stop)


@dataclass
class _Run:
    """A training run between epochs: what it trains, on what, and how far it has come."""

    model_id: str
    path: Path
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    model: RecurrentModel
    opt: torch.optim.Optimizer
    kind: TaskKind
    base: dict[str, Any]                       # the checkpoint's fields that do not change between epochs
    metrics: list[dict[str, Any]]
    start_epoch: int = 1
    best_loss: float = math.inf
    bad_epochs: int = 0
    best_state: dict[str, Any] | None = None
    next_lr: float = 0.0


def _setup(model_id, model_cfg, train_cfg, store_root, corpus, name, created_by, resume, device) -> _Run:
    """The model, optimizer, data and checkpoint fields of a run: a new one, or the resumed checkpoint's."""
    check_model_id(model_id)
    train_cfg.validate()
    path = checkpoint_file(store_root, model_id)
    prior = read_checkpoint(path) if resume else None
    if prior is not None:
        model_cfg = ModelConfig(**prior["model_config"])
        train_cfg = dataclasses.replace(TrainConfig.from_dict(prior["train_config"]), epochs=train_cfg.epochs)
    corpus = corpus or load_corpus(train_cfg.corpus)
    if corpus.task != model_cfg.task:
        raise ValueError(f"corpus {corpus.name!r} is for task {corpus.task!r} but the model is a "
                         f"{model_cfg.task!r} model; pick a {model_cfg.task} corpus or preset")
    torch.manual_seed(train_cfg.seed)
    vocab = (Vocab.from_dict(prior["vocab"]) if prior else
             Vocab.build(corpus.tokens("train"), train_cfg.vocab_size, corpus.pos_counts))
    model_cfg.vocab_size = len(vocab)
    model_cfg.num_classes = max(2, len(corpus.label_names))
    model = RecurrentModel(model_cfg.validate())
    model.init_weights(train_cfg.init_range, train_cfg.init)
    model.to(device or default_device())
    opt = make_optimizer(model, train_cfg)
    kind = task_kind(model_cfg.task, corpus, vocab, train_cfg)
    base = {"model_id": model_id, "name": name or model_id, "corpus": corpus.name, "created_by": created_by,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "label_names": list(corpus.label_names), "vocab": vocab.to_dict(),
            "model_config": dataclasses.asdict(model_cfg), "train_config": dataclasses.asdict(train_cfg)}
    run = _Run(model_id, path, model_cfg, train_cfg, model, opt, kind, base, [], next_lr=train_cfg.lr)
    if prior is not None:
        _resume(run, prior)
    return run


def _resume(run: _Run, prior: dict[str, Any]) -> None:
    """Carry on from the checkpoint's last finished epoch."""
    r = prior["resume"]
    run.model.load_state_dict(r["state_dict"])
    run.opt.load_state_dict(r["optimizer"])
    run.start_epoch, run.bad_epochs, run.best_loss = r["epoch"] + 1, r["bad_epochs"], r["best_loss"]
    run.best_state = prior["state_dict"]
    run.metrics = [m for m in prior["metrics"] if m["split"] != "test"]
    run.base["created_at"] = prior.get("created_at", run.base["created_at"])
    run.next_lr = r.get("next_lr", run.train_cfg.lr)
    log.info("resuming %s after epoch %d", run.model_id, r["epoch"])


def _train_epoch(run: _Run, epoch: int, show_progress: bool, on_progress, should_stop) -> tuple[float, int, float]:
    """Train one epoch at its learning rate: (mean loss, tokens, lr)."""
    tc, steps = run.train_cfg, run.kind.steps_per_epoch
    lr = epoch_lr(tc, epoch, run.next_lr)
    for g in run.opt.param_groups:
        g["lr"] = lr
    bar = tqdm(total=steps, desc=f"{run.model_id} epoch {epoch}/{tc.epochs}", unit="step",
               disable=not show_progress, leave=False, dynamic_ncols=True)

    def on_step(step, loss):
        if on_progress is not None and (step % 10 == 0 or step == steps):
            on_progress({"epoch": epoch, "epochs": tc.epochs, "step": step, "steps": steps,
                         "loss": float(loss.detach()), "lr": lr})

    with bar:
        train_loss, tokens = run.kind.train_epoch(run.model, run.opt, epoch, bar, on_step, should_stop)
    return train_loss, tokens, lr


def _epoch(run: _Run, epoch: int, show_progress: bool, on_progress, should_stop) -> bool:
    """Train and validate one epoch, note it and write the checkpoint; True to stop early (patience)."""
    tc = run.train_cfg
    t0 = time.perf_counter()
    train_loss, tokens, lr = _train_epoch(run, epoch, show_progress, on_progress, should_stop)
    tps = tokens / max(time.perf_counter() - t0, 1e-9)
    valid = run.kind.evaluate(run.model, "valid")
    train_m = run.kind.train_metrics(run.model, train_loss)
    wall = time.perf_counter() - t0
    run.metrics.append({"epoch": epoch, "split": "train", **train_m, "tokens_per_s": tps, "wall_s": wall})
    run.metrics.append({"epoch": epoch, "split": "valid", **valid, "tokens_per_s": None, "wall_s": wall})
    improved = valid["loss"] < run.best_loss
    if improved:
        run.best_loss, run.bad_epochs = valid["loss"], 0
        run.best_state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    else:
        run.bad_epochs += 1
    run.next_lr = lr if improved else lr * tc.lr_decay     # what a plateau schedule uses next
    msg = (f"epoch {epoch}: train loss {train_loss:.3f}, valid loss {valid['loss']:.3f} "
           + (f"ppl {valid['perplexity']:.1f}" if valid["perplexity"] else f"acc {valid['accuracy']:.3f}")
           + f", {tps:,.0f} tok/s, {wall:.1f}s, lr {lr:g}")
    if show_progress:
        tqdm.write(f"{run.model_id} {msg}")
    else:
        log.info("%s %s", run.model_id, msg)
    if on_progress is not None:
        steps = run.kind.steps_per_epoch
        on_progress({"epoch": epoch, "epochs": tc.epochs, "step": steps, "steps": steps, "loss": train_loss,
                     "tokens_per_s": tps, "valid": valid, "lr": lr})
    last = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    save_checkpoint(run.path, {**run.base, "state_dict": run.best_state, "metrics": run.metrics, "complete": False,
                               "resume": {"state_dict": last, "optimizer": run.opt.state_dict(), "epoch": epoch,
                                          "lr": lr, "next_lr": run.next_lr, "bad_epochs": run.bad_epochs,
                                          "best_loss": run.best_loss}})
    if tc.patience and run.bad_epochs >= tc.patience:
        log.info("%s: early stop after epoch %d (no better validation loss in %d epochs)",
                 run.model_id, epoch, run.bad_epochs)
        return True
    return False


def _train_model(model_id, model_cfg, train_cfg, store_root, *, corpus, name, created_by, resume, device,
                 show_progress, on_progress, should_stop) -> TrainResult:
    run = _setup(model_id, model_cfg, train_cfg, store_root, corpus, name, created_by, resume, device)
    t_start = time.perf_counter()
    epoch = run.start_epoch - 1
    for epoch in range(run.start_epoch, run.train_cfg.epochs + 1):
        if _epoch(run, epoch, show_progress, on_progress, should_stop):
            break
    # Test with the best weights.
    if run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    test = run.kind.evaluate(run.model, "test")
    run.metrics.append({"epoch": epoch, "split": "test", **test, "tokens_per_s": None, "wall_s": None})
    ckpt = read_checkpoint(run.path)
    ckpt.update(metrics=run.metrics, complete=True)
    save_checkpoint(run.path, ckpt)
    wall = time.perf_counter() - t_start
    return TrainResult(model_id, run.path, run.metrics, epoch - run.start_epoch + 1, wall)
