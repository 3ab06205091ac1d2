"""Evaluate a user's sentence on a model: states at every step, stored as a partition.

The sentence goes through the same tokenizer and vocabulary as the training
corpus (:mod:`models.text`), so the ids match what the model was trained on.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from models.rnn import RecurrentModel
from models.text import Vocab, tokenize

from . import store
from .glyphs import class_contributions

MAX_TOKENS = 500


class SentenceError(ValueError):
    """A sentence that cannot be evaluated, with what to do about it."""


@dataclass
class SentenceResult:
    sentence_id: str
    model_id: str
    text: str
    original: list[str]                       # tokens as typed
    tokens: list[str]                         # vocabulary words (unknown words are <unk>)
    states: dict[tuple[int, str], np.ndarray]  # (layer, state) -> [T, H]
    label_names: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    contributions: np.ndarray | None = None   # [T, C] classifier only

    @property
    def prediction(self) -> str | None:
        if not self.probabilities:
            return None
        return self.label_names[int(np.argmax(self.probabilities))]

    @property
    def probability(self) -> float | None:
        return max(self.probabilities) if self.probabilities else None


def sentence_id(model_id: str, text: str) -> str:
    return hashlib.sha1(f"{model_id}\0{text}".encode()).hexdigest()[:20]


def evaluate_sentence(model: RecurrentModel, vocab: Vocab, model_id: str, text: str,
                      label_names: list[str] | None = None, max_tokens: int = MAX_TOKENS) -> SentenceResult:
    """Trace one sentence from zero state.  Raises SentenceError for empty or over-long text."""
    original = tokenize(text or "")
    if not original:
        raise SentenceError("the sentence is empty: type a few words")
    if len(original) > max_tokens:
        raise SentenceError(f"the sentence has {len(original)} tokens; the limit is {max_tokens}. "
                            f"Shorten it or split it in two.")
    ids = vocab.encode(original)
    tokens = vocab.decode(ids)
    x = torch.tensor(ids, dtype=torch.long)[:, None]                                   # [T, 1]
    model.eval()
    traced = model.trace(x)
    states = {k: v[:, 0].cpu().numpy() for k, v in traced.items()}                      # [T, H]
    res = SentenceResult(sentence_id(model_id, text), model_id, text, original, tokens, states)
    if model.cfg.task == "sentiment":
        h = states[(model.cfg.layers - 1, "h")]
        with torch.no_grad():
            logits = model.head(torch.from_numpy(h[-1:]))[0]
        res.label_names = list(label_names or [str(i) for i in range(logits.numel())])
        res.probabilities = torch.softmax(logits, -1).tolist()
        res.contributions = class_contributions(h, model.head.weight.detach().cpu().numpy())
    return res


def save_sentence(store_root: str | os.PathLike, res: SentenceResult, created_by: str = "anonymous") -> str:
    """Write the sentence and its states as one partition (replacing an earlier evaluation)."""
    T = len(res.tokens)
    parts = []
    for (layer, state), values in sorted(res.states.items()):
        H = values.shape[1]
        parts.append(pd.DataFrame({
            "sentence_id": res.sentence_id, "model_id": res.model_id,
            "position": np.repeat(np.arange(T, dtype=np.int32), H), "token": np.repeat(res.tokens, H),
            "layer": np.int32(layer), "state": state, "unit": np.tile(np.arange(H, dtype=np.int32), T),
            "value": values.astype(np.float32).reshape(-1)}))
    head = pd.DataFrame([{"sentence_id": res.sentence_id, "model_id": res.model_id, "text": res.text,
                          "created_at": dt.datetime.now(dt.timezone.utc), "created_by": created_by,
                          "prediction": res.prediction, "probability": res.probability}])
    with store.write_partition(store_root, "sentences", res.sentence_id) as w:
        w.write("sentences", head)
        w.write("sentence_states", pd.concat(parts, ignore_index=True))
    return res.sentence_id
