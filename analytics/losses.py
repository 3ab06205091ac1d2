"""What each model gets wrong, token by token: the tables behind "why is one model better" (R5).

Language models. The analysed split is read as one continuous stream from a zero state (the semantics of
``word_responses``). Token t's loss is ``-log p(x_t | x_<t)``, in nats: the prediction made after reading
x_(t-1), of the word at t. A row of ``word_loss`` is keyed on the *predicted* word x_t; ``token_loss`` keeps
every token's loss by its position t (1 .. N-1: the first token has no prediction).

It is computed by the model's own fused forward over pieces of the stream read side by side, with start
states made exact (see :func:`_piece_outputs`): the result is that of the stream read in one go from a zero
state, checked against a step-by-step loop in the tests. The output layer runs on blocks of rows, so memory
is bounded by HEAD_ROWS x vocabulary floats. Sums are in float64.

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

__all__ = ["PIECES", "WINDOW", "lm_token_losses", "word_loss_frame", "token_loss_frame", "classifier_outcomes",
           "class_metrics_frame", "class_confusion_frame", "write_lm_losses", "write_class_outcomes"]

#: Pieces of the stream traced side by side, the window re-traced to check a piece's start, and rows of logits
#: at once (the output layer's memory: rows x vocabulary floats, 80 MB for 2048 x 10k).
PIECES, WINDOW, HEAD_ROWS = 64, 200, 2048
#: A piece's start is exact once re-reading its first WINDOW tokens from the previous piece's true end state
#: reaches the state the first pass reached, to this absolute tolerance (float32 noise is ~1e-7).
STATE_TOL = 1e-5


def _states(model: RecurrentModel, x: torch.Tensor, state) -> tuple[torch.Tensor, object]:
    """The recurrent core over x [T, B] from ``state``: top-layer outputs [T, B, H] and the final state."""
    return model.rnn(model.embed(x), state)


def _select(state, cols: torch.Tensor):
    return tuple(s[:, cols] for s in state) if isinstance(state, tuple) else state[:, cols]


def _assign(state, cols: torch.Tensor, value) -> None:
    if isinstance(state, tuple):
        for s, v in zip(state, value, strict=True):
            s[:, cols] = v
    else:
        state[:, cols] = value


def _gap(a, b) -> torch.Tensor:
    """Per column, the largest absolute difference of two states."""
    pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
    return torch.stack([(u - v).abs().amax(dim=(0, 2)) for u, v in pairs]).amax(dim=0)


def _piece_outputs(model: RecurrentModel, x: torch.Tensor, pieces: int, window: int) -> torch.Tensor:
    """Top-layer outputs of the stream x [N] read from a zero state, as x's pieces [length, P] traced side by side.

    Every piece starts from a zero state: right for piece 0, as the stream starts there; a guess for the
    others. Then every piece re-reads its first ``window`` tokens from its
    predecessor's end state; where that reaches the state the guess reached (to STATE_TOL), the rest of the
    piece is what the stream gives, as long as the predecessor was exact. Walking the pieces in order, the
    first one that does not settle is re-read whole from its predecessor's true end, and the pieces after it
    are checked again in the next round. Usually one round settles every piece (the recurrence forgets the
    guess within the window); at worst each round settles one more, so the result is always the stream's.
    """
    length = -(-x.numel() // pieces)
    flat = torch.zeros(pieces * length, dtype=torch.long, device=x.device)
    flat[: x.numel()] = x                                                 # the last piece is padded at its end
    X = flat.view(pieces, length).t()                                     # [length, P]: column j is piece j
    head, mid = _states(model, X[:window], model.init_state(pieces))     # every piece guesses a zero start
    tail, end = _states(model, X[window:], mid)
    out = torch.cat([head, tail])
    first = 1                                                             # pieces before it are exact
    while first < pieces:
        todo = torch.arange(first, pieces)
        w_out, w_state = _states(model, X[:window, todo], _select(end, todo - 1))
        settled = (_gap(w_state, _select(mid, todo)) <= STATE_TOL).tolist() + [False]
        k = settled.index(False)                                          # todo[:k] settle; todo[k] does not
        out[:window, todo[: k + 1]] = w_out[:, : k + 1]
        if first + k < pieces:                                            # the guess had not faded: re-read it
            j = first + k
            r_out, r_end = _states(model, X[window:, j:j + 1], _select(w_state, torch.tensor([k])))
            out[window:, j] = r_out[:, 0]
            _assign(end, torch.tensor([j]), r_end)
        first += k + 1
    return out.transpose(0, 1).reshape(pieces * length, -1)[: x.numel()]  # back to stream order [N, H]


@torch.inference_mode()
def lm_token_losses(model: RecurrentModel, stream: torch.Tensor, *, pieces: int = PIECES, window: int = WINDOW,
                    on_progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Loss of every token of ``stream`` [N] but the first, in nats: float64 [N - 1], entry t - 1 for token t.

    Exactly the stream read from a zero state (see :func:`_piece_outputs`), at the speed of a batched forward.
    """
    if pieces < 1 or window < 1:
        raise ValueError("pieces and window must be positive")
    model.eval()
    device = model.head.weight.device
    n = int(stream.numel()) - 1
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    x = stream[:n].to(device)
    outputs = _piece_outputs(model, x, max(1, min(pieces, n // (2 * window))), window) if n >= 2 * window \
        else _states(model, x[:, None], None)[0][:, 0]
    y = stream[1:].to(device)
    out = np.zeros(n, dtype=np.float64)
    for start in range(0, n, HEAD_ROWS):
        stop = min(start + HEAD_ROWS, n)
        logits = model.head(outputs[start:stop]).float()
        out[start:stop] = F.cross_entropy(logits, y[start:stop], reduction="none").double().cpu().numpy()
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
