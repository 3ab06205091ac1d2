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
import pyarrow as pa
import torch

from models.rnn import RecurrentModel
from models.runtime import single_sequence_threads
from models.text import Vocab, tokenize

from . import store
from .glyphs import class_contributions

MAX_TOKENS = 500
NEXT_WORDS = 3      # a language model's likeliest next words kept with a sentence (the first is stored)


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
    next_words: list[tuple[str, float]] = field(default_factory=list)  # language model: likeliest next words, p

    @property
    def prediction(self) -> str | None:
        """The predicted class (classifier) or the likeliest next word (language model)."""
        if self.probabilities:
            return self.label_names[int(np.argmax(self.probabilities))]
        return self.next_words[0][0] if self.next_words else None

    @property
    def probability(self) -> float | None:
        if self.probabilities:
            return max(self.probabilities)
        return self.next_words[0][1] if self.next_words else None


def sentence_id(model_id: str, text: str) -> str:
    return hashlib.sha1(f"{model_id}\0{text}".encode()).hexdigest()[:20]


def evaluate_sentence(model: RecurrentModel, vocab: Vocab, model_id: str, text: str,
                      label_names: list[str] | None = None, max_tokens: int = MAX_TOKENS) -> SentenceResult:
    """Trace one sentence from zero state, with the model's prediction after its last word: the class of a
    classifier, the likeliest next words of a language model.  Raises SentenceError for empty or over-long text."""
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
    with single_sequence_threads():   # batch 1: one thread is much faster (models/runtime.py)
        traced = model.trace(x)
    states = {k: v[:, 0].cpu().numpy() for k, v in traced.items()}                      # [T, H]
    res = SentenceResult(sentence_id(model_id, text), model_id, text, original, tokens, states)
    h = states[(model.cfg.layers - 1, "h")]                                             # [T, H] last layer
    with torch.no_grad():
        logits = model.head(torch.from_numpy(h[-1:]).to(model.head.weight.device))[0]   # [C] or [V]
    probs = torch.softmax(logits.float(), -1).cpu()
    if model.cfg.task == "sentiment":
        res.label_names = list(label_names or [str(i) for i in range(logits.numel())])
        res.probabilities = probs.tolist()
        res.contributions = class_contributions(h, model.head.weight.detach().cpu().numpy())
    else:   # language model: what it expects after the last word (the stored prediction is the first)
        top = torch.topk(probs, k=min(NEXT_WORDS, probs.numel()))
        res.next_words = [(w, float(p)) for w, p in zip(vocab.decode(top.indices.tolist()), top.values.tolist())]
    return res


def _repeat(value: str, n: int) -> pa.DictionaryArray:
    """``value`` n times, as a dictionary array (the store casts it to a plain string column)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value], pa.string()))


def sentence_states_table(res: SentenceResult) -> pa.Table:
    """The ``sentence_states`` rows of ``res``, already in the view's order (layer, state, position, unit).

    Built as Arrow arrays rather than a DataFrame: a DataFrame of T·H Python
    strings per (layer, state) took most of the time of storing a sentence.
    """
    T = len(res.tokens)
    cols: dict[str, list] = {c: [] for c in ("position", "token", "layer", "state", "unit", "value")}
    states = sorted({s for _, s in res.states})
    token_dict = pa.array(list(res.tokens), pa.string())
    state_dict = pa.array(states, pa.string())
    for (layer, state), values in sorted(res.states.items()):
        H = values.shape[1]
        pos = np.repeat(np.arange(T, dtype=np.int32), H)
        cols["position"].append(pos)
        cols["token"].append(pos)                                      # index into token_dict
        cols["layer"].append(np.full(T * H, layer, np.int32))
        cols["state"].append(np.full(T * H, states.index(state), np.int32))
        cols["unit"].append(np.tile(np.arange(H, dtype=np.int32), T))
        cols["value"].append(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    cat = {c: (np.concatenate(v) if v else np.zeros(0, np.float32 if c == "value" else np.int32))
           for c, v in cols.items()}
    n = len(cat["position"])
    return pa.table({
        "sentence_id": _repeat(res.sentence_id, n), "model_id": _repeat(res.model_id, n),
        "position": pa.array(cat["position"]),
        "token": pa.DictionaryArray.from_arrays(pa.array(cat["token"]), token_dict),
        "layer": pa.array(cat["layer"]),
        "state": pa.DictionaryArray.from_arrays(pa.array(cat["state"]), state_dict),
        "unit": pa.array(cat["unit"]), "value": pa.array(cat["value"])})


def save_sentence(store_root: str | os.PathLike, res: SentenceResult, created_by: str = "anonymous") -> str:
    """Write the sentence and its states as one partition (replacing an earlier evaluation).

    The partition is committed atomically like every other (readers see all
    of it or none of it, and a killed process leaves only staging) but
    without fsync (``durable=False``).  Trade-off: only an OS crash or power
    loss within the kernel's writeback window (seconds) can lose it, and then
    the partition may be missing (the glyph view says "not in the store") or
    hold empty/truncated files (queries that read it fail until it is deleted
    with ``store.delete_partition`` or re-added).  A sentence is a user's
    scratch evaluation, recomputed from its text in milliseconds, whereas
    the four fsyncs were the slowest and most variable part of adding a
    sentence in the dashboard (20 ms at best, far more while other jobs write
    to the disk).  Model partitions (hours of training and analysis) stay
    durable.
    """
    head = pd.DataFrame([{"sentence_id": res.sentence_id, "model_id": res.model_id, "text": res.text,
                          "created_at": dt.datetime.now(dt.UTC), "created_by": created_by,
                          "prediction": res.prediction, "probability": res.probability}])
    with store.write_partition(store_root, "sentences", res.sentence_id, durable=False) as w:
        w.write("sentences", head)
        w.write("sentence_states", sentence_states_table(res))
    return res.sentence_id
