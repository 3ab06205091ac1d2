"""Corpus loaders: Brown (tagged), PTB-format splits, plain text, review CSV, Yelp JSON.

Every loader returns a :class:`Corpus` whose splits hold *normalised* token
sequences (see :mod:`models.text`).  Language-model sequences end with
``<eos>``; classifier sequences come with integer labels.  Splits are
deterministic: the same files always give the same train/valid/test.
"""
from __future__ import annotations

import csv
import json
import logging
import lzma
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .pos import brown_to_universal
from .text import EOS, normalize, tokenize

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
SENTIMENT_LABELS = ["negative", "positive"]
DEMO_DATA = Path(__file__).parent / "demo_data"
BUILTIN = ("brown", "fine_foods", "austen")
csv.field_size_limit(10_000_000)


class CorpusError(ValueError):
    """A corpus that cannot be used, with a message that says what to fix."""


@dataclass
class Corpus:
    name: str
    task: str                                   # "lm" or "sentiment"
    splits: dict[str, list[list[str]]]          # split -> sequences of normalised tokens
    labels: dict[str, list[int]] = field(default_factory=dict)  # sentiment only
    label_names: list[str] = field(default_factory=list)
    pos_counts: dict[str, Counter] = field(default_factory=dict)  # word -> Counter(universal tag)
    source: str = ""
    # split -> per token of ``splits`` its gold universal POS tag ("" where there is none, e.g. <eos>); empty for
    # a corpus without gold tags (only Brown has them)
    tags: dict[str, list[list[str]]] = field(default_factory=dict)

    def tag_stream(self, split: str) -> list[str]:
        """The gold tags of a split in text order, as :meth:`tokens` reads it; [] without gold tags."""
        return [t for seq in self.tags.get(split, []) for t in seq]

    def tokens(self, split: str) -> Iterator[str]:
        for seq in self.splits[split]:
            yield from seq

    def num_tokens(self, split: str) -> int:
        return sum(len(s) for s in self.splits[split])

    def summary(self) -> str:
        sizes = ", ".join(f"{s} {self.num_tokens(s):,}" for s in SPLITS)
        return f"{self.name} ({self.task}): {sizes} tokens"

    def validate(self) -> Corpus:
        for s in SPLITS:
            if not self.splits.get(s) or self.num_tokens(s) == 0:
                raise CorpusError(f"corpus {self.name!r} has an empty {s} split; "
                                  f"give it more text (each split needs at least one sequence)")
        if self.task == "sentiment":
            for s in SPLITS:
                if len(set(self.labels[s])) < 1:
                    raise CorpusError(f"corpus {self.name!r}: no labels in {s}")
            if len(set(self.labels["train"])) < 2:
                raise CorpusError(f"corpus {self.name!r}: the training split needs both classes")
        return self


def _split_index(i: int, m: int) -> str:
    """Deterministic 80/10/10 assignment of item i of m, spread across the items."""
    r = i % 10
    return "valid" if r == 8 else "test" if r == 9 else "train"


def _assign_splits(items: list, split_of) -> dict[str, list]:
    out: dict[str, list] = {s: [] for s in SPLITS}
    for i, it in enumerate(items):
        out[split_of(i, len(items))].append(it)
    return out


# ---------------------------------------------------------------- Brown (tagged)
def _brown_files(path: Path) -> Iterator[tuple[str, str, str]]:
    """Yield (file id, genre, text) from the Brown folder or the packed demo file."""
    if path.is_file():  # packed: "fileid<TAB>genre<TAB>text of one line" per line, xz
        current: dict[str, list[str]] = defaultdict(list)
        genre: dict[str, str] = {}
        with lzma.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                fid, g, text = line.rstrip("\n").split("\t", 2)
                current[fid].append(text)
                genre[fid] = g
        for fid in sorted(current):
            yield fid, genre[fid], "\n".join(current[fid])
        return
    cats_file = path / "cats.txt"
    files = sorted(p for p in path.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if not files:
        raise CorpusError(f"no Brown files (ca01 ... cr09) in {path}")
    cats = {}
    if cats_file.exists():
        cats = dict(line.split()[:2] for line in cats_file.read_text().splitlines() if line.strip())
    for p in files:
        yield p.name, cats.get(p.name, p.name[:2]), p.read_text(encoding="utf-8", errors="replace")


def load_brown(path: str | os.PathLike, name: str = "brown") -> Corpus:
    """Brown corpus, tagged form: one sentence a line, tokens ``word/tag``.

    Split by file within each genre, so every genre is in every split.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"Brown corpus not found at {path}")
    by_genre: dict[str, list[tuple[str, list[tuple[list[str], list[str]]]]]] = defaultdict(list)
    pos_counts: dict[str, Counter] = defaultdict(Counter)
    for fid, genre, text in _brown_files(path):
        sents = []
        for line in text.splitlines():
            toks = line.split()
            if not toks:
                continue
            sent, tags = [], []
            for tok in toks:
                word, sep, tag = tok.rpartition("/")
                if not sep or not word:
                    word, tag = tok, "nil"
                w, universal = normalize(word), brown_to_universal(tag)
                sent.append(w)
                tags.append(universal)
                pos_counts[w][universal] += 1
            sent.append(EOS)
            tags.append("")
            sents.append((sent, tags))
        by_genre[genre].append((fid, sents))
    splits: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    gold: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    for genre in sorted(by_genre):
        files = sorted(by_genre[genre])
        assigned = [_split_index(i, len(files)) for i in range(len(files))]
        for needed in ("test", "valid"):  # small genres: take the last training files
            if needed not in assigned:
                j = max(i for i, s in enumerate(assigned) if s == "train")
                assigned[j] = needed
        for (_fid, sents), split in zip(files, assigned):
            splits[split].extend(sent for sent, _ in sents)
            gold[split].extend(tags for _, tags in sents)
    return Corpus(name, "lm", splits, pos_counts=dict(pos_counts), source=str(path), tags=gold).validate()


# ---------------------------------------------------------------- PTB format
def load_ptb(folder: str | os.PathLike, name: str | None = None) -> Corpus:
    """``ptb.{train,valid,test}.txt``: tokens as given, ``<eos>`` at each line end."""
    folder = Path(folder)
    splits = {}
    for s in SPLITS:
        matches = sorted(folder.glob(f"*{s}.txt"))
        if not matches:
            raise CorpusError(f"{folder} has no *.{s}.txt file; PTB format needs "
                              f"ptb.train.txt, ptb.valid.txt and ptb.test.txt")
        with open(matches[0], encoding="utf-8", errors="replace") as f:
            splits[s] = [[normalize(t) for t in line.split()] + [EOS] for line in f if line.strip()]
    return Corpus(name or folder.name, "lm", splits, source=str(folder)).validate()


# ---------------------------------------------------------------- plain text
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]*[A-Z])")


def _sentences(text: str) -> Iterator[list[str]]:
    """Sentences by their punctuation; in a paragraph without any (one sentence per line, as in many
    prepared corpora), by line."""
    for para in re.split(r"\n\s*\n", text):
        chunks = para.splitlines() if not re.search(r"[.!?]", para) else _SENT_END.split(" ".join(para.split()))
        for sent in chunks:
            toks = [normalize(t) for t in tokenize(sent)]
            if toks:
                yield toks + [EOS]


def load_text(path: str | os.PathLike, name: str | None = None) -> Corpus:
    """Plain text (a file or a folder of ``.txt`` files), split into sentences.

    Each document is cut into contiguous 80/10/10 parts, so every document is
    in every split and the test text is never seen in training.
    """
    path = Path(path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files or not all(f.exists() for f in files):
        raise CorpusError(f"no text files at {path}")
    splits: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    for f in files:
        _reject_binary(f)
        sents = list(_sentences(f.read_text(encoding="utf-8", errors="replace")))
        a, b = int(len(sents) * 0.8), int(len(sents) * 0.9)
        splits["train"] += sents[:a]
        splits["valid"] += sents[a:b]
        splits["test"] += sents[b:]
    return Corpus(name or path.stem, "lm", splits, source=str(path)).validate()


# ---------------------------------------------------------------- reviews
_TEXT_COLS = ("review", "text", "sentence", "content")
_LABEL_COLS = ("score", "label", "sentiment", "stars", "rating")


def _label(value: str) -> int | None:
    """great/positive/pos/1/4-5 stars -> 1; other/negative/neg/0/1-2 stars -> 0; 3 stars -> None."""
    v = value.strip().lower()
    if v in ("great", "positive", "pos", "1", "true"):
        return 1
    if v in ("other", "negative", "neg", "0", "false"):
        return 0
    try:
        stars = float(v)
    except ValueError:
        raise CorpusError(f"unknown label {value!r}: use great/other, positive/negative, 0/1 or 1-5 stars") from None
    return 1 if stars >= 4 else 0 if stars <= 2 else None


def _reject_binary(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\x00" in head:
        raise CorpusError(f"{path} looks like a binary file, not text")
    if not head.strip():
        raise CorpusError(f"{path} is empty")


def _read_csv_rows(path: Path, max_len: int) -> tuple[list[list[str]], list[int]]:
    packed = path.suffix == ".xz"
    if not packed:
        _reject_binary(path)
    opener = lzma.open if packed else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        text_col = next((c for c in _TEXT_COLS if c in cols), None)
        label_col = next((c for c in _LABEL_COLS if c in cols), None)
        if text_col is None or label_col is None:
            raise CorpusError(f"{path.name}: a review CSV needs a text column ({'/'.join(_TEXT_COLS)}) "
                              f"and a label column ({'/'.join(_LABEL_COLS)}); found {cols or 'no header'}")
        orig = {c.strip().lower(): c for c in reader.fieldnames}
        docs, labels = [], []
        for row in reader:
            y = _label(row[orig[label_col]] or "")
            toks = [normalize(t) for t in tokenize(row[orig[text_col]] or "")][:max_len]
            if y is not None and toks:
                docs.append(toks)
                labels.append(y)
    return docs, labels


def _sentiment_corpus(name: str, parts: dict[str, tuple[list, list]], source: str) -> Corpus:
    """Fill missing valid/test splits deterministically from train (every 10th item)."""
    docs, labels = parts["train"]
    if "test" not in parts or "valid" not in parts:
        pieces = _assign_splits(list(zip(docs, labels)), _split_index)
        if "test" in parts:  # only valid is missing: take it from train
            pieces["train"] += pieces.pop("test")
            pieces["test"] = list(zip(*parts["test"]))
        parts = {s: ([d for d, _ in pieces[s]], [lab for _, lab in pieces[s]]) for s in SPLITS}
    splits = {s: parts[s][0] for s in SPLITS}
    labels_ = {s: parts[s][1] for s in SPLITS}
    return Corpus(name, "sentiment", splits, labels_, list(SENTIMENT_LABELS), source=source).validate()


def load_reviews_csv(path: str | os.PathLike, name: str | None = None, max_len: int = 400) -> Corpus:
    """Labelled reviews as CSV: a file, or a folder with ``train.csv`` (+ ``test.csv``, ``valid.csv``)."""
    path = Path(path)
    if path.is_dir():
        found = {s: next(iter(sorted(path.glob(f"{s}.csv*"))), None) for s in SPLITS}
        if found["train"] is None:
            raise CorpusError(f"{path} has no train.csv")
        parts = {s: _read_csv_rows(p, max_len) for s, p in found.items() if p is not None}
    else:
        if not path.exists():
            raise CorpusError(f"review CSV not found: {path}")
        parts = {"train": _read_csv_rows(path, max_len)}
    if not parts["train"][0]:
        raise CorpusError(f"{path}: no labelled reviews found")
    return _sentiment_corpus(name or path.stem, parts, str(path))


def load_yelp_json(path: str | os.PathLike, name: str | None = None, max_len: int = 400) -> Corpus:
    """Yelp review JSON lines: ``stars`` >= 4 positive, <= 2 negative, 3 dropped."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"Yelp JSON file not found: {path}")
    _reject_binary(path)
    docs, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                text, stars = rec["text"], float(rec["stars"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise CorpusError(f"{path.name} line {lineno}: each line must be a JSON object "
                                  f"with 'text' and 'stars'") from None
            if stars == 3:
                continue
            toks = [normalize(t) for t in tokenize(text)][:max_len]
            if toks:
                docs.append(toks)
                labels.append(1 if stars >= 4 else 0)
    if not docs:
        raise CorpusError(f"{path}: no usable reviews (need stars other than 3 and some text)")
    return _sentiment_corpus(name or path.stem, {"train": (docs, labels)}, str(path))


# ---------------------------------------------------------------- dispatch
def shared_data_dir() -> Path | None:
    """``$RNNVIS_DATA`` or ``../shared/data`` next to the repository, if present."""
    env = os.environ.get("RNNVIS_DATA")
    cand = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return cand if cand.is_dir() else None


def detect_format(path: Path) -> str:
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if any(re.fullmatch(r"c[a-r]\d\d", n) for n in names):
            return "brown"
        if any(n.endswith("train.txt") for n in names):
            return "ptb"
        if "train.csv" in names or "train.csv.xz" in names:
            return "csv"
        return "text"
    suffixes = "".join(path.suffixes).lower()
    if ".csv" in suffixes:
        return "csv"
    if ".json" in suffixes:
        return "yelp"
    if path.name.startswith("brown") and suffixes.endswith(".xz"):
        return "brown"
    return "text"


LOADERS = {"brown": load_brown, "ptb": load_ptb, "text": load_text, "csv": load_reviews_csv, "yelp": load_yelp_json}


def load_corpus(spec: str, fmt: str | None = None) -> Corpus:
    """Load a built-in corpus by name (``brown``, ``fine_foods``, ``austen``) or a path.

    The format of a path is detected (Brown folder, PTB folder, CSV, JSON lines,
    plain text) unless ``fmt`` names one of ``brown, ptb, text, csv, yelp``.
    """
    if spec in BUILTIN and fmt is None:
        shared = shared_data_dir()
        if spec == "brown":
            packed = DEMO_DATA / "brown.tsv.xz"
            return load_brown(packed if packed.exists() else _need(shared, "brown"), "brown")
        if spec == "fine_foods":
            packed = DEMO_DATA / "fine_foods"
            return load_reviews_csv(packed if packed.exists() else _need(shared, "fine_foods"), "fine_foods")
        return load_text(_need(shared, "austen"), "austen")
    path = Path(spec)
    if not path.exists():
        raise CorpusError(f"unknown corpus {spec!r}: give a built-in name ({', '.join(BUILTIN)}) "
                          f"or the path of a corpus file or folder")
    fmt = fmt or detect_format(path)
    if fmt not in LOADERS:
        raise CorpusError(f"unknown corpus format {fmt!r}; use one of {', '.join(LOADERS)}")
    return LOADERS[fmt](path)


def _need(shared: Path | None, sub: str) -> Path:
    if shared is None or not (shared / sub).exists():
        raise CorpusError(f"built-in corpus {sub!r} needs ../shared/data/{sub} (or RNNVIS_DATA)")
    return shared / sub
