"""Token states with a planted pattern: the ground truth of the pattern-search tests and the Patterns page's.

Over a random text of ``n`` words, ``trigger`` is planted every ``gap`` words (a random gap in that range);
units ``planted`` are 0.9 for exactly ``length`` steps after each trigger and below ``theta - margin``
elsewhere; the other units are noise in [-1, 1] that crosses ``theta`` often.
"""
from __future__ import annotations

import numpy as np


def planted_text(n: int, hidden: int, length: int, theta: float, planted: tuple[int, ...], words: list[str],
                 gap: tuple[int, int], margin: float, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                                 np.ndarray]:
    """(vocabulary, word ids [n], values [n, hidden] float32, span starts: the position after each trigger)."""
    rng = np.random.default_rng(seed)
    vocab = ["<pad>", "<unk>", "<eos>", "trigger"] + list(words)
    ids = rng.integers(4, len(vocab), n)
    starts = np.cumsum(rng.integers(gap[0], gap[1], n // gap[0]))
    starts = starts[starts < n - length - 1]
    ids[starts] = 3
    values = rng.uniform(-1, 1, (n, hidden)).astype(np.float32)
    values[:, list(planted)] = rng.uniform(-1, theta - margin, (n, len(planted)))
    for u in planted:
        values[(starts[:, None] + 1 + np.arange(length)).ravel(), u] = 0.9
    return vocab, ids, values, starts + 1
