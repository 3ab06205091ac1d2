"""Where one language model beats another: the loss difference by word class and by word.

Two models' ``token_loss`` rows are joined on position (the same split of the same corpus read as one stream).
A token counts when both models predicted the same word: the same vocabulary entry, or ``<unk>`` for both.
Tokens where one model knows the word and the other predicts ``<unk>`` (different vocabularies), or positions
only one model analysed, are left out and counted.

With Δ_t = loss_A(t) − loss_B(t) (nats; negative where A is better) over the N kept tokens:

- the total Δ is the mean of Δ_t, which is the difference of the two log-perplexities on those tokens;
- a tag's (or a word's) *contribution* is n_tag × Δ_tag / N: the contributions of all tags sum exactly to the
  total Δ;
- each tag's mean Δ gets a 95% percentile interval from a bootstrap over sentences (a sentence ends at
  ``<eos>``; resampling sentences keeps the dependence between tokens of one sentence).

A token's tag is its word's most frequent gold universal POS tag in the training split (``vocab.pos``);
words without one count as ``X``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LossComparison", "compare_losses", "BOOTSTRAP", "BOOTSTRAP_SEED", "UNKNOWN_TAG"]

BOOTSTRAP, BOOTSTRAP_SEED = 1000, 0
UNKNOWN_TAG = "X"
_BLOCK = 100       # bootstrap draws per matrix product (bounds memory at _BLOCK x sentences floats)


@dataclass
class LossComparison:
    tokens: int              # tokens compared
    left_out: int            # tokens of either model not compared
    loss_a: float            # mean loss of A over the compared tokens, nats
    loss_b: float
    by_tag: pd.DataFrame     # tag, n, loss_a, loss_b, delta, lo, hi, contribution
    by_word: pd.DataFrame    # word, tag, n, loss_a, loss_b, delta, contribution

    @property
    def delta(self) -> float:
        return self.loss_a - self.loss_b


def _joined(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows (position, word, sentence, nll_a, nll_b) predicted alike by both, and how many were left out."""
    both = a.merge(b, on="position", suffixes=("_a", "_b"))
    same = both[both["word_a"] == both["word_b"]]
    left_out = len(a) + len(b) - 2 * len(same)
    return same.rename(columns={"word_a": "word", "sentence_a": "sentence"}), left_out


def _bootstrap(sentence: np.ndarray, tag: np.ndarray, delta: np.ndarray, n_tags: int, draws: int,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval of each tag's mean Δ, resampling whole sentences with replacement."""
    s_ids, s_idx = np.unique(sentence, return_inverse=True)
    S = len(s_ids)
    sums = np.zeros((S, n_tags))
    counts = np.zeros((S, n_tags))
    np.add.at(sums, (s_idx, tag), delta)
    np.add.at(counts, (s_idx, tag), 1.0)
    rng = np.random.default_rng(seed)
    means = np.empty((draws, n_tags))
    for start in range(0, draws, _BLOCK):
        k = min(_BLOCK, draws - start)
        w = rng.multinomial(S, np.full(S, 1.0 / S), size=k).astype(np.float64)       # [k, S] sentence weights
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:start + k] = (w @ sums) / (w @ counts)
    lo, hi = np.nanpercentile(means, [2.5, 97.5], axis=0)
    return lo, hi


def compare_losses(a: pd.DataFrame, b: pd.DataFrame, tags: dict[str, str], *, draws: int = BOOTSTRAP,
                   seed: int = BOOTSTRAP_SEED) -> LossComparison:
    """Compare two models' token losses.

    ``a`` and ``b`` have columns position, word (the predicted word, ``<unk>`` if outside the vocabulary),
    sentence (index of the sentence the token is in) and nll; ``tags`` maps a word to its POS tag.
    """
    rows, left_out = _joined(a, b)
    if rows.empty:
        raise ValueError("the two models share no predicted token: they were not analysed on the same text")
    N = len(rows)
    delta = (rows["nll_a"] - rows["nll_b"]).to_numpy(np.float64)
    tag = rows["word"].map(tags).fillna(UNKNOWN_TAG).astype(str)
    frame = pd.DataFrame({"word": rows["word"].to_numpy(), "tag": tag.to_numpy(), "a": rows["nll_a"].to_numpy(),
                          "b": rows["nll_b"].to_numpy(), "delta": delta})
    by_tag = frame.groupby("tag", sort=True).agg(n=("delta", "size"), loss_a=("a", "mean"), loss_b=("b", "mean"),
                                                 delta=("delta", "mean")).reset_index()
    codes = pd.Categorical(frame["tag"], categories=by_tag["tag"]).codes
    lo, hi = _bootstrap(rows["sentence"].to_numpy(), codes, delta, len(by_tag), draws, seed)
    by_tag["lo"], by_tag["hi"] = lo, hi
    by_tag["contribution"] = by_tag["n"] * by_tag["delta"] / N
    by_word = frame.groupby("word", sort=False).agg(tag=("tag", "first"), n=("delta", "size"), loss_a=("a", "mean"),
                                                    loss_b=("b", "mean"), delta=("delta", "mean")).reset_index()
    by_word["contribution"] = by_word["n"] * by_word["delta"] / N
    return LossComparison(N, int(left_out), float(frame["a"].mean()), float(frame["b"].mean()),
                          by_tag.sort_values("contribution", ignore_index=True),
                          by_word.sort_values("contribution", ignore_index=True))
