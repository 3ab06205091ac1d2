"""A store whose token states carry a planted pattern (for the Patterns page tests and its screenshot).

Model ``planted`` (an LM 'lstm' of one layer, H units, no checkpoint): over a random text of N words, units
PLANTED are 0.9 for exactly L steps after every 'trigger' and below THETA elsewhere; the other units are noise
in [-1, 1]. Written through the store as the analysis writes it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analytics import store
from analytics import token_states as ts
from analytics.schema import VIEWS
from tests import planted

N, H, L, THETA = 3_000, 16, 3, 0.6
PLANTED = (2, 5, 11)
MODEL = "planted"


def planted_text(seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary, word ids [N], values [N, H], span starts: the position after each trigger)."""
    return planted.planted_text(N, H, L, THETA, PLANTED, ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"],
                                gap=(25, 45), margin=0.1, seed=seed)


def build_planted_store(root: Path) -> Path:
    vocab, ids, values, _ = planted_text()
    col = ts.TokenStateCollector([(0, "h")], [(0, "h")], H, N, deltas=False)
    col.begin(None, 1, N)
    col.add(torch.from_numpy(values)[:, None, :], 0)
    row = {c.name: None for c in VIEWS["models"].columns}
    row.update(model_id=MODEL, name=MODEL, task="lm", cell="lstm", layers=1, hidden_size=H, embed_size=4,
               vocab_size=len(vocab), corpus="planted", states="h")
    tags = {"trigger": "NOUN", "the": "DET", "a": "DET", "cat": "NOUN", "dog": "NOUN", "mat": "NOUN",
            "sat": "VERB", "ran": "VERB", "on": "ADP"}
    with store.write_partition(root, "models", MODEL) as w:
        w.write("models", pd.DataFrame([row]))
        w.write("vocab", pd.DataFrame({"model_id": MODEL, "word_id": np.arange(len(vocab)), "word": vocab,
                                       "freq": np.bincount(ids, minlength=len(vocab)),
                                       "pos": [tags.get(v) for v in vocab]}))
        ts.write_corpus_tokens(w, MODEL, ids, vocab)
        col.write(w, MODEL)
    return root
