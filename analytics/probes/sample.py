"""Which tokens a probe trains and tests on: whole sentences, seeded, split by sentence.

The split is read as one stream (as the responses are).  It is cut into *blocks* of whole sentences of at least
``BLOCK`` tokens; when the stream has more tagged tokens than ``budget``, a seeded random choice of blocks is kept
until the budget is reached (the subsample is recorded in the probe's ``params``).  Blocks rather than single
sentences so that the untrained model's states can be traced per block after a short warm-up
(:mod:`.untrained`) at little cost.  Each kept sentence goes to the training set with probability
``TRAIN_SHARE`` (seeded), else to the test set; tokens without a gold tag (``<eos>``) are left out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCK", "TRAIN_SHARE", "ProbeSample", "sentence_ids", "probe_sample"]

#: Least tokens of one block of whole sentences.
BLOCK = 1000
#: Share of the sampled sentences that train the probe (the rest test it).
TRAIN_SHARE = 0.8


@dataclass
class ProbeSample:
    """The sampled tokens, in text order."""

    positions: np.ndarray        # [P] int64 stream positions
    tags: np.ndarray             # [P] int tag codes into tag_names
    words: np.ndarray            # [P] int64 word ids (what the model reads)
    train: np.ndarray            # [P] bool: in a training sentence
    blocks: np.ndarray           # [M, 2] (start, stop) stream ranges of the kept blocks
    tag_names: list[str]
    tagged_tokens: int           # tagged tokens in the whole (analysed) stream

    @property
    def subsampled(self) -> bool:
        return len(self.positions) < self.tagged_tokens


def sentence_ids(lengths: Sequence[int], total: int) -> np.ndarray:
    """[total] the sentence index of each stream position (sentences of ``lengths`` in order, cut at total)."""
    return np.repeat(np.arange(len(lengths)), lengths)[:total]


def _blocks(sentence: np.ndarray) -> np.ndarray:
    """[M, 2] ranges of whole sentences, each of at least BLOCK tokens (the last may be shorter)."""
    starts = np.flatnonzero(np.r_[True, sentence[1:] != sentence[:-1]])        # first position of each sentence
    cuts, last = [0], 0
    for s in starts[1:]:
        if s - last >= BLOCK:
            cuts.append(int(s))
            last = s
    cuts.append(len(sentence))
    return np.array(list(zip(cuts[:-1], cuts[1:])), dtype=np.int64).reshape(-1, 2)


def probe_sample(tags: Sequence[str], ids: np.ndarray, sentence: np.ndarray, budget: int, seed: int
                 ) -> ProbeSample | None:
    """The sample of a stream of gold ``tags`` ("" = none), word ``ids`` and ``sentence`` ids (all [N]);
    at most about ``budget`` tagged tokens (0 = all).  None when fewer than two sentences are tagged."""
    tagged = np.array([bool(t) for t in tags])
    blocks = _blocks(sentence)
    rng = np.random.default_rng(seed)
    if budget and tagged.sum() > budget:
        counts = np.array([tagged[a:b].sum() for a, b in blocks])
        order = rng.permutation(len(blocks))
        keep = order[: int(np.searchsorted(np.cumsum(counts[order]), budget)) + 1]
        blocks = blocks[np.sort(keep)]
    inside = np.zeros(len(tags), bool)
    for a, b in blocks:
        inside[a:b] = True
    positions = np.flatnonzero(inside & tagged)
    sents = np.unique(sentence[positions])
    if len(sents) < 2:
        return None
    in_train = rng.random(len(sents)) < TRAIN_SHARE
    in_train[0], in_train[-1] = True, False                  # both sets non-empty
    names = sorted({tags[p] for p in positions})
    code = {t: i for i, t in enumerate(names)}
    return ProbeSample(positions=positions, tags=np.array([code[tags[p]] for p in positions]),
                       words=np.asarray(ids)[positions].astype(np.int64),
                       train=in_train[np.searchsorted(sents, sentence[positions])], blocks=blocks,
                       tag_names=names, tagged_tokens=int(tagged.sum()))
