"""What differs between a language model and a classifier: one small strategy object per task kind.

:class:`LMTask` (task ``lm``) trains by truncated BPTT over the training split as one stream and reports
loss and perplexity; :class:`ClassifierTask` (task ``sentiment``) trains over documents batched by length
and reports loss and accuracy.  :func:`task_kind` picks one by the model's task; :mod:`models.train` runs
either through the same loop.  Below them, the data, evaluation and epoch functions each kind uses.
"""
from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.nn.functional as F

from .config import TrainConfig
from .corpora import Corpus
from .rnn import RecurrentModel
from .text import Vocab

__all__ = ["TaskKind", "LMTask", "ClassifierTask", "task_kind", "TrainingCancelled", "lm_stream", "batchify",
           "doc_batches", "evaluate_lm", "evaluate_classifier", "train_lm_epoch", "train_classifier_epoch"]


class TrainingCancelled(RuntimeError):
    """Raised when ``should_stop`` says so; the last finished epoch's checkpoint stays."""


class TaskKind:
    """The training data of one task kind over a corpus, and how to train and evaluate on it."""

    steps_per_epoch: int

    def train_epoch(self, model: RecurrentModel, opt: torch.optim.Optimizer, epoch: int, bar=None, on_step=None,
                    should_stop=None) -> tuple[float, int]:
        """One epoch of training: (mean loss, tokens)."""
        raise NotImplementedError

    def train_metrics(self, model: RecurrentModel, train_loss: float) -> dict[str, Any]:
        """The epoch's figures on the training split (loss, perplexity, accuracy)."""
        raise NotImplementedError

    def evaluate(self, model: RecurrentModel, split: str) -> dict[str, Any]:
        """Loss, perplexity, accuracy on ``split`` ("valid" or "test")."""
        raise NotImplementedError


class LMTask(TaskKind):
    """A language model: truncated BPTT over the training split as one stream, [N / batch, batch]."""

    def __init__(self, corpus: Corpus, vocab: Vocab, tc: TrainConfig):
        self.corpus, self.vocab, self.tc = corpus, vocab, tc
        self.train_data = batchify(lm_stream(corpus, vocab, "train", tc.max_train_tokens), tc.batch_size)
        self.valid_data = batchify(lm_stream(corpus, vocab, "valid"), 10)
        self.steps_per_epoch = math.ceil((self.train_data.size(0) - 1) / tc.bptt)

    def train_epoch(self, model, opt, epoch, bar=None, on_step=None, should_stop=None):
        return train_lm_epoch(model, opt, self.train_data, self.tc, bar, on_step, should_stop)

    def train_metrics(self, model, train_loss):
        return {"loss": train_loss, "perplexity": math.exp(min(train_loss, 50)), "accuracy": None}

    def evaluate(self, model, split):
        data = self.valid_data if split == "valid" else batchify(lm_stream(self.corpus, self.vocab, split), 10)
        return evaluate_lm(model, data, self.tc.bptt)


class ClassifierTask(TaskKind):
    """A classifier: documents cut at ``max_len`` tokens (the training split at ``max_train_tokens``), batched by
    length."""

    def __init__(self, corpus: Corpus, vocab: Vocab, tc: TrainConfig):
        self.tc = tc
        self.docs = {s: ([vocab.encode(d)[: tc.max_len] for d in corpus.splits[s]], corpus.labels[s])
                     for s in ("train", "valid", "test")}
        if tc.max_train_tokens:
            docs, labels = self.docs["train"]
            keep, n = 0, 0
            while keep < len(docs) and n < tc.max_train_tokens:
                n += len(docs[keep])
                keep += 1
            self.docs["train"] = (docs[:keep], labels[:keep])
        self.steps_per_epoch = math.ceil(len(self.docs["train"][0]) / tc.batch_size)

    def train_epoch(self, model, opt, epoch, bar=None, on_step=None, should_stop=None):
        return train_classifier_epoch(model, opt, *self.docs["train"], self.tc, epoch, bar, on_step, should_stop)

    def train_metrics(self, model, train_loss):
        return evaluate_classifier(model, *self.docs["train"])

    def evaluate(self, model, split):
        return evaluate_classifier(model, *self.docs[split])


#: The strategy of each task (models.config.TASKS).
TASK_KINDS: dict[str, type[TaskKind]] = {"lm": LMTask, "sentiment": ClassifierTask}


def task_kind(task: str, corpus: Corpus, vocab: Vocab, tc: TrainConfig) -> TaskKind:
    """The strategy of ``task`` over ``corpus``."""
    return TASK_KINDS[task](corpus, vocab, tc)


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
