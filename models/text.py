"""Tokenizer, word normalisation and vocabulary.

One tokenizer serves training and evaluation alike (the original RNNVis
tokenized its corpora and the user's sentences differently, so a sentence typed
into the UI could map to other ids than the same text in training).
Pre-tokenized corpora (Brown, PTB) keep their tokens and only go through
:func:`normalize`; raw text (Austen, reviews, a user's sentence) goes through
:func:`tokenize` first.
"""
from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD, UNK, EOS)
NUMBER = "N"

_TAG = re.compile(r"<[^>]{0,200}>")
# Words keep inner apostrophes and hyphens ("don't", "Atlanta's", "term-end"),
# as Brown does; numbers keep their separators so they fold to one N; every
# other non-space character is a token of its own, except a few multi-char
# punctuation marks that Brown writes as one token.
_TOKEN = re.compile(
    r"""\d+(?:[.,:/]\d+)*(?:[a-z]{1,2}\b)?      # 1,000  3.5  12:30  1960s
      | [^\W\d_]+(?:['’\-][^\W\d_]+)*           # words, don't, term-end
      | --+ | \.\.\.+ | ``|''                    # multi-char punctuation
      | \S                                      # any other single character
    """,
    re.VERBOSE,
)
_IS_NUMBER = re.compile(r"^[+-]?[\d.,:/-]*\d[\d.,:/-]*(?:[a-z]{1,2})?$")
_QUOTES = {"``": '"', "''": '"', "“": '"', "”": '"', "‘": "'", "’": "'"}


def tokenize(text: str) -> list[str]:
    """Split raw text into tokens; HTML tags such as ``<br />`` are dropped."""
    text = _TAG.sub(" ", html.unescape(text))
    return _TOKEN.findall(text)


def normalize(token: str) -> str:
    """Lower-case a token and fold numbers to ``N``; special tokens stay."""
    if token in SPECIALS or token == NUMBER:
        return token
    low = token.lower()
    if _IS_NUMBER.match(low):
        return NUMBER
    return _QUOTES.get(low, low)


@dataclass
class Vocab:
    """Word <-> id map: specials first, then the most frequent words.

    ``freq`` counts each word in the data the vocabulary was built from; ``pos``
    holds the most frequent universal POS tag of a word where tags are known.
    """

    words: list[str]
    freq: list[int]
    pos: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}
        if self.words[: len(SPECIALS)] != list(SPECIALS):
            raise ValueError(f"vocabulary must start with {SPECIALS}")

    @classmethod
    def build(cls, tokens: Iterable[str], size: int = 10_000,
              pos_counts: dict[str, Counter] | None = None) -> Vocab:
        """Keep the ``size`` most frequent normalised tokens (specials included)."""
        if size <= len(SPECIALS):
            raise ValueError(f"vocabulary size must be greater than {len(SPECIALS)}, got {size}")
        counts = Counter(normalize(t) for t in tokens)
        eos = counts.get(EOS, 0)   # sentence ends are real tokens: their count is <eos>'s frequency
        for s in SPECIALS:
            counts.pop(s, None)
        if not counts:
            raise ValueError("cannot build a vocabulary from an empty corpus")
        # Ties broken alphabetically so the same corpus always gives the same ids.
        kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - len(SPECIALS)]
        unk = sum(counts.values()) - sum(c for _, c in kept)
        words = list(SPECIALS) + [w for w, _ in kept]
        freq = [0, unk, eos] + [c for _, c in kept]
        pos = {}
        if pos_counts:
            pos = {w: pos_counts[w].most_common(1)[0][0] for w in words if pos_counts.get(w)}
        return cls(words, freq, pos)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def unk_id(self) -> int:
        return self.index[UNK]

    @property
    def pad_id(self) -> int:
        return self.index[PAD]

    @property
    def eos_id(self) -> int:
        return self.index[EOS]

    def encode(self, words: Sequence[str]) -> list[int]:
        """Map tokens to ids (normalising them first); unknown words -> ``<unk>``."""
        unk = self.unk_id
        return [self.index.get(normalize(w), unk) for w in words]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"words": list(self.words), "freq": list(self.freq), "pos": dict(self.pos)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(list(d["words"]), [int(x) for x in d["freq"]], dict(d.get("pos", {})))
