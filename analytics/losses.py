"""What each model gets wrong, token by token: the tables behind "why is one model better" (R5).

Language models. The analysed split is read as one continuous stream from a zero state (the semantics of
``word_responses``). Token t's loss is ``-log p(x_t | x_<t)``, in nats: the prediction made after reading
x_(t-1), of the word at t. A row of ``word_loss`` is keyed on the *predicted* word x_t; ``token_loss`` keeps
every token's loss by its position t (1 .. N-1: the first token has no prediction).

It is computed by the model's own forward pass over consecutive chunks of the stream with the recurrent state
carried from one chunk to the next, which is the continuous stream itself (no warm-up, no approximation);
the output layer runs one chunk of rows at a time, so memory is bounded by ``chunk`` x vocabulary floats.
Sums are in float64.

Classifiers. Each document of the split is classified as in training (truncated to ``max_len``);
``class_metrics`` has, per true label, the number of documents, the accuracy and the mean probability given
to the true label, and ``class_confusion`` counts (true label, predicted label) pairs.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from models.rnn import RecurrentModel

__all__ = ["LOSS_CHUNK", "lm_token_losses", "word_loss_frame", "token_loss_frame", "classifier_outcomes",
           "class_metrics_frame", "class_confusion_frame", "write_lm_losses", "write_class_outcomes"]

#: Tokens per forward call: the logits of one chunk are chunk x vocabulary floats (80 MB for 2048 x 10k).
LOSS_CHUNK = 2048


@torch.inference_mode()
def lm_token_losses(model: RecurrentModel, stream: torch.Tensor, *, chunk: int = LOSS_CHUNK,
                    on_progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Loss of every token of ``stream`` [N] but the first, in nats: float64 [N - 1], entry t - 1 for token t."""
    if chunk < 1:
        raise ValueError("chunk must be positive")
    model.eval()
    device = model.head.weight.device
    n = int(stream.numel()) - 1
    out = np.zeros(max(n, 0), dtype=np.float64)
    state = None
    for start in range(0, max(n, 0), chunk):
        stop = min(start + chunk, n)
        x = stream[start:stop].to(device)[:, None]                        # [T, 1]: what the model reads
        y = stream[start + 1:stop + 1].to(device)                          # the words it predicts
        logits, state = model(x, state)
        out[start:stop] = F.cross_entropy(logits[:, 0].float(), y, reduction="none").double().cpu().numpy()
        if on_progress is not None:
            on_progress(stop / n)
    return out


def _moments(ids: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per id: count, mean and sample std (ddof=1; 0 when n == 1), as ``word_responses`` has them."""
    n = np.bincount(ids, minlength=size)
    s1 = np.bincount(ids, weights=values, minlength=size)
    mean = np.divide(s1, n, out=np.zeros(size), where=n > 0)
    dev = values - mean[ids]                                              # two-pass: no cancellation
    m2 = np.bincount(ids, weights=dev * dev, minlength=size)
    std = np.sqrt(np.divide(m2, n - 1, out=np.zeros(size), where=n > 1))
    return n, mean, std


def word_loss_frame(model_id: str, stream: torch.Tensor, nll: np.ndarray, words: Sequence[str]) -> pd.DataFrame:
    """``word_loss`` rows: per predicted word with at least one occurrence, n, mean and std of its loss."""
    targets = stream[1:].numpy().astype(np.int64)
    n, mean, std = _moments(targets, nll, len(words))
    seen = np.flatnonzero(n)
    return pd.DataFrame({"model_id": model_id, "word_id": seen.astype(np.int32),
                         "word": [words[i] for i in seen], "n": n[seen].astype(np.int64),
                         "nll_mean": mean[seen], "nll_std": std[seen]})


def token_loss_frame(model_id: str, stream: torch.Tensor, nll: np.ndarray) -> pd.DataFrame:
    """``token_loss`` rows: position t (1 .. N-1), the word at t and its loss."""
    return pd.DataFrame({"model_id": model_id, "position": np.arange(1, len(nll) + 1, dtype=np.int64),
                         "word_id": stream[1:].numpy().astype(np.int32), "nll": nll.astype(np.float32)})


@torch.inference_mode()
def classifier_outcomes(model: RecurrentModel, docs: Sequence[Sequence[int]], *,
                        batch_size: int = 64) -> np.ndarray:
    """Class probabilities of every document, float64 [D, C] (documents batched by length, order kept)."""
    model.eval()
    device = model.head.weight.device
    probs = np.zeros((len(docs), model.cfg.num_classes), dtype=np.float64)
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    for g in (order[i:i + batch_size] for i in range(0, len(order), batch_size)):
        lengths = torch.tensor([max(1, len(docs[i])) for i in g])
        x = torch.zeros(int(lengths.max()), len(g), dtype=torch.long)
        for j, i in enumerate(g):
            x[: len(docs[i]), j] = torch.as_tensor(docs[i], dtype=torch.long)
        logits, _ = model(x.to(device), lengths=lengths)
        probs[g] = torch.softmax(logits.float(), dim=-1).double().cpu().numpy()
    return probs


def class_metrics_frame(model_id: str, labels: Sequence[int], probs: np.ndarray,
                        label_names: Sequence[str]) -> pd.DataFrame:
    """``class_metrics`` rows: per true label, n, accuracy and mean probability of the true label."""
    y = np.asarray(labels, dtype=np.int64)
    pred = probs.argmax(axis=1)
    rows = []
    for c, name in enumerate(label_names):
        mine = y == c
        k = int(mine.sum())
        rows.append({"model_id": model_id, "label": str(name), "n": k,
                     "accuracy": float((pred[mine] == c).mean()) if k else None,
                     "mean_p_true": float(probs[mine, c].mean()) if k else None})
    return pd.DataFrame(rows)


def class_confusion_frame(model_id: str, labels: Sequence[int], probs: np.ndarray,
                          label_names: Sequence[str]) -> pd.DataFrame:
    """``class_confusion`` rows: every (true, predicted) pair of labels with its count (zeros included)."""
    C = len(label_names)
    counts = np.zeros((C, C), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), probs.argmax(axis=1)), 1)
    return pd.DataFrame([{"model_id": model_id, "label": str(label_names[t]), "predicted": str(label_names[p]),
                          "n": int(counts[t, p])} for t in range(C) for p in range(C)])


def write_lm_losses(w, model_id: str, model: RecurrentModel, stream: torch.Tensor, words: Sequence[str],
                    on_progress: Callable[[float], None] | None = None) -> None:
    """Compute and write a language model's ``word_loss`` and ``token_loss`` into partition writer ``w``."""
    nll = lm_token_losses(model, stream, on_progress=on_progress)
    w.write("word_loss", word_loss_frame(model_id, stream, nll, words))
    w.write("token_loss", token_loss_frame(model_id, stream, nll))


def write_class_outcomes(w, model_id: str, model: RecurrentModel, docs: Sequence[Sequence[int]],
                         labels: Sequence[int], label_names: Sequence[str]) -> None:
    """Compute and write a classifier's ``class_metrics`` and ``class_confusion`` into partition writer ``w``."""
    probs = classifier_outcomes(model, docs)
    w.write("class_metrics", class_metrics_frame(model_id, labels, probs, label_names))
    w.write("class_confusion", class_confusion_frame(model_id, labels, probs, label_names))
