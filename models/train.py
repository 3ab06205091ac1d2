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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import check_model_id, checkpoint_file, read_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .corpora import Corpus, load_corpus
from .rnn import RecurrentModel
from .runtime import torch_threads
from .text import Vocab

log = logging.getLogger(__name__)
ProgressFn = Callable[[dict[str, Any]], None]


class TrainingCancelled(RuntimeError):
    """Raised when ``should_stop`` says so; the last finished epoch's checkpoint stays."""


@dataclass
class TrainResult:
    model_id: str
    checkpoint: Path
    metrics: list[dict[str, Any]]
    epochs_run: int
    wall_s: float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- data
def lm_stream(corpus: Corpus, vocab: Vocab, split: str, max_tokens: int = 0) -> torch.Tensor:
    """All sequences of a split as one id stream [N]."""
    ids = vocab.encode(list(corpus.tokens(split)))
    if max_tokens:
        ids = ids[:max_tokens]
    return torch.tensor(ids, dtype=torch.long)


def batchify(stream: torch.Tensor, batch: int) -> torch.Tensor:
    """[N] -> [N // batch, batch]: column b is one contiguous piece of the stream."""
    n = stream.numel() // batch
    if n < 2:
        raise ValueError(f"the stream has {stream.numel()} tokens, too few for batch size {batch}")
    return stream[: n * batch].view(batch, n).t().contiguous()


def doc_batches(docs: list[list[int]], labels: list[int], batch: int, shuffle: bool, seed: int,
                pad_id: int = 0):
    """Yield (x [T, B], lengths [B], y [B]); documents of similar length batched together."""
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
    if shuffle:
        random.Random(seed).shuffle(chunks)
    for idx in chunks:
        lengths = torch.tensor([len(docs[i]) for i in idx])
        x = torch.full((int(lengths.max()), len(idx)), pad_id, dtype=torch.long)
        for j, i in enumerate(idx):
            x[: len(docs[i]), j] = torch.tensor(docs[i])
        yield x, lengths, torch.tensor([labels[i] for i in idx])


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_lm(model: RecurrentModel, data: torch.Tensor, bptt: int) -> dict[str, float]:
    """Loss and perplexity of a batchified stream, state carried across windows."""
    model.eval()
    device = model.head.weight.device
    state = model.init_state(data.size(1))
    total, count = 0.0, 0
    for i in range(0, data.size(0) - 1, bptt):
        seq = min(bptt, data.size(0) - 1 - i)
        x, y = data[i:i + seq].to(device), data[i + 1:i + 1 + seq].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "accuracy": None}


@torch.no_grad()
def evaluate_classifier(model: RecurrentModel, docs, labels, batch: int = 64) -> dict[str, float]:
    model.eval()
    device = model.head.weight.device
    total, correct, count = 0.0, 0, 0
    for x, lengths, y in doc_batches(docs, labels, batch, False, 0):
        logits, _ = model(x.to(device), lengths=lengths)
        y = y.to(device)
        total += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
        count += y.numel()
    return {"loss": total / max(count, 1), "perplexity": None, "accuracy": correct / max(count, 1)}


# ---------------------------------------------------------------- training
def make_optimizer(model: RecurrentModel, tc: TrainConfig) -> torch.optim.Optimizer:
    if tc.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)


def _run_epoch(model, opt, losses, clip: float, bar=None, on_step=None, should_stop=None) -> tuple[float, int]:
    """Optimise over ``losses``, an iterator of (mean loss, tokens, scale) computed lazily one batch at a time.

    The gradient step (and the clipping) is on ``scale * loss``; returns (mean of the mean losses,
    tokens).  ``on_step(step, loss)`` is called after each step, ``should_stop()`` polled after each
    step (TrainingCancelled).
    """
    model.train()
    total = torch.zeros((), device=model.head.weight.device)
    steps, tokens = 0, 0
    for loss, n, scale in losses:
        opt.zero_grad(set_to_none=True)
        (loss * scale if scale != 1 else loss).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        total += loss.detach()
        steps += 1
        tokens += n
        if bar is not None:
            bar.update(1)
        if on_step is not None:
            on_step(steps, loss)
        if should_stop is not None and should_stop():
            raise TrainingCancelled("training cancelled")
    return (total / max(steps, 1)).item(), tokens


def train_lm_epoch(model, opt, data: torch.Tensor, tc: TrainConfig, bar=None, on_step=None, should_stop=None):
    """One epoch of truncated BPTT over a batchified stream [N, B]; returns (mean loss, tokens)."""
    device = model.head.weight.device

    def losses():
        state = model.init_state(data.size(1))
        for i in range(0, data.size(0) - 1, tc.bptt):
            seq = min(tc.bptt, data.size(0) - 1 - i)
            x, y = data[i:i + seq].to(device), data[i + 1:i + 1 + seq].to(device)   # [T, B]
            state = _detach(state)
            logits, state = model(x, state)                                         # [T, B, V]
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))  # mean over T*B tokens
            # "sequence" (Zaremba et al.): summed over the T steps, averaged over the batch.
            yield loss, y.numel(), (seq if tc.loss == "sequence" else 1)

    return _run_epoch(model, opt, losses(), tc.clip, bar, on_step, should_stop)


def train_classifier_epoch(model, opt, docs, labels, tc: TrainConfig, epoch: int, bar=None, on_step=None,
                           should_stop=None):
    """One epoch over the documents, shuffled by length bucket; returns (mean loss, tokens)."""
    device = model.head.weight.device

    def losses():
        for x, lengths, y in doc_batches(docs, labels, tc.batch_size, True, tc.seed + epoch):
            logits, _ = model(x.to(device), lengths=lengths)                        # [B, C]
            yield F.cross_entropy(logits, y.to(device)), int(lengths.sum()), 1

    return _run_epoch(model, opt, losses(), tc.clip, bar, on_step, should_stop)


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


def _train_model(model_id, model_cfg, train_cfg, store_root, *, corpus, name, created_by, resume, device,
                 show_progress, on_progress, should_stop) -> TrainResult:
    check_model_id(model_id)
    train_cfg.validate()
    path = checkpoint_file(store_root, model_id)
    device = device or default_device()
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
    model.to(device)
    opt = make_optimizer(model, train_cfg)
    metrics: list[dict[str, Any]] = []
    start_epoch = 1
    best_loss, bad_epochs, best_state = math.inf, 0, None
    if prior is not None:
        r = prior["resume"]
        model.load_state_dict(r["state_dict"])
        opt.load_state_dict(r["optimizer"])
        start_epoch, bad_epochs, best_loss = r["epoch"] + 1, r["bad_epochs"], r["best_loss"]
        best_state = prior["state_dict"]
        metrics = [m for m in prior["metrics"] if m["split"] != "test"]
        log.info("resuming %s after epoch %d", model_id, r["epoch"])

    if model_cfg.task == "lm":
        train_data = batchify(lm_stream(corpus, vocab, "train", train_cfg.max_train_tokens), train_cfg.batch_size)
        valid_data = batchify(lm_stream(corpus, vocab, "valid"), 10)
        steps_per_epoch = math.ceil((train_data.size(0) - 1) / train_cfg.bptt)
    else:
        enc = {s: ([vocab.encode(d)[: train_cfg.max_len] for d in corpus.splits[s]], corpus.labels[s])
               for s in ("train", "valid", "test")}
        if train_cfg.max_train_tokens:
            keep, n = 0, 0
            while keep < len(enc["train"][0]) and n < train_cfg.max_train_tokens:
                n += len(enc["train"][0][keep])
                keep += 1
            enc["train"] = (enc["train"][0][:keep], enc["train"][1][:keep])
        steps_per_epoch = math.ceil(len(enc["train"][0]) / train_cfg.batch_size)

    base = {"model_id": model_id, "name": name or model_id, "corpus": corpus.name, "created_by": created_by,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "label_names": list(corpus.label_names), "vocab": vocab.to_dict(),
            "model_config": dataclasses.asdict(model_cfg), "train_config": dataclasses.asdict(train_cfg)}
    if prior is not None:
        base["created_at"] = prior.get("created_at", base["created_at"])
    t_start = time.perf_counter()
    epoch = start_epoch - 1
    next_lr = prior["resume"].get("next_lr", train_cfg.lr) if prior is not None else train_cfg.lr
    for epoch in range(start_epoch, train_cfg.epochs + 1):
        lr = epoch_lr(train_cfg, epoch, next_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"{model_id} epoch {epoch}/{train_cfg.epochs}", unit="step",
                   disable=not show_progress, leave=False, dynamic_ncols=True)

        def on_step(step, loss, _epoch=epoch, _t0=t0, _lr=lr):
            if on_progress is not None and (step % 10 == 0 or step == steps_per_epoch):
                on_progress({"epoch": _epoch, "epochs": train_cfg.epochs, "step": step, "steps": steps_per_epoch,
                             "loss": float(loss.detach()), "lr": _lr})

        with bar:
            if model_cfg.task == "lm":
                train_loss, tokens = train_lm_epoch(model, opt, train_data, train_cfg, bar, on_step, should_stop)
            else:
                train_loss, tokens = train_classifier_epoch(model, opt, *enc["train"], train_cfg, epoch, bar,
                                                            on_step, should_stop)
        train_s = time.perf_counter() - t0
        tps = tokens / max(train_s, 1e-9)
        if model_cfg.task == "lm":
            valid = evaluate_lm(model, valid_data, train_cfg.bptt)
            train_m = {"loss": train_loss, "perplexity": math.exp(min(train_loss, 50)), "accuracy": None}
        else:
            valid = evaluate_classifier(model, *enc["valid"])
            train_m = evaluate_classifier(model, *enc["train"])
        wall = time.perf_counter() - t0
        metrics.append({"epoch": epoch, "split": "train", **train_m, "tokens_per_s": tps, "wall_s": wall})
        metrics.append({"epoch": epoch, "split": "valid", **valid, "tokens_per_s": None, "wall_s": wall})
        improved = valid["loss"] < best_loss
        if improved:
            best_loss, bad_epochs = valid["loss"], 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        next_lr = lr if improved else lr * train_cfg.lr_decay     # what a plateau schedule uses next
        msg = (f"epoch {epoch}: train loss {train_loss:.3f}, valid loss {valid['loss']:.3f} "
               + (f"ppl {valid['perplexity']:.1f}" if valid["perplexity"] else f"acc {valid['accuracy']:.3f}")
               + f", {tps:,.0f} tok/s, {wall:.1f}s, lr {lr:g}")
        if show_progress:
            tqdm.write(f"{model_id} {msg}")
        else:
            log.info("%s %s", model_id, msg)
        if on_progress is not None:
            on_progress({"epoch": epoch, "epochs": train_cfg.epochs, "step": steps_per_epoch,
                         "steps": steps_per_epoch, "loss": train_loss, "tokens_per_s": tps,
                         "valid": valid, "lr": lr})
        last = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_checkpoint(path, {**base, "state_dict": best_state, "metrics": metrics, "complete": False,
                               "resume": {"state_dict": last, "optimizer": opt.state_dict(), "epoch": epoch,
                                          "lr": lr, "next_lr": next_lr, "bad_epochs": bad_epochs,
                                          "best_loss": best_loss}})
        if train_cfg.patience and bad_epochs >= train_cfg.patience:
            log.info("%s: early stop after epoch %d (no better validation loss in %d epochs)",
                     model_id, epoch, bad_epochs)
            break

    # Test with the best weights.
    if best_state is not None:
        model.load_state_dict(best_state)
    if model_cfg.task == "lm":
        test = evaluate_lm(model, batchify(lm_stream(corpus, vocab, "test"), 10), train_cfg.bptt)
    else:
        test = evaluate_classifier(model, *enc["test"])
    metrics.append({"epoch": epoch, "split": "test", **test, "tokens_per_s": None, "wall_s": None})
    ckpt = read_checkpoint(path)
    ckpt.update(metrics=metrics, complete=True)
    save_checkpoint(path, ckpt)
    wall = time.perf_counter() - t_start
    return TrainResult(model_id, path, metrics, epoch - start_epoch + 1, wall)
