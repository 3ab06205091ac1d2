"""Bring your own model: turn an uploaded checkpoint or PyTorch state dict into an RNNVis checkpoint.

What is accepted, and how a file is read and recognised: :mod:`models.import_plan`.

Words are normalised like every RNNVis corpus (lower case, numbers -> ``N``)
and the special tokens ``<pad> <unk> <eos>`` moved to the front; rows are
permuted accordingly, so the imported model computes exactly what the
original did on the words it knows. The metrics are computed here on the
chosen corpus, whatever the file says. An uploaded checkpoint brings weights,
vocabulary and shapes; its ``train_config`` and ``metrics`` are claims, kept as a
bounded summary (:mod:`models.summary`), and its corpus is the one the import
used (``corpus_spec``: a built-in name or ``upload:<id>``, never a path it names).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, check_model_id, checkpoint_file, model_from_checkpoint, save_checkpoint
from .config import TrainConfig
from .corpora import SENTIMENT_LABELS, Corpus
from .import_plan import ImportPlan, ModelImportError, inspect_model
from .rnn import RecurrentModel
from .safe_load import DEFAULT_MAX_PARAMS
from .summary import Limits, summarize
from .text import EOS, PAD, SPECIALS, UNK, Vocab, normalize

__all__ = ["ImportResult", "ModelImportError", "import_model", "inspect_model", "MISSING_LOGIT_BIAS"]

_ALIASES = {"<pad>": PAD, "[pad]": PAD, "<blank>": PAD, "<unk>": UNK, "[unk]": UNK, "<oov>": UNK,
            "<eos>": EOS, "</s>": EOS, "[sep]": EOS}
MISSING_LOGIT_BIAS = -30.0


@dataclass
class ImportResult:
    model_id: str
    checkpoint: Path
    summary: dict[str, Any]
    warnings: list[str]


def _build_vocab(plan: ImportPlan, corpus: Corpus) -> tuple[Vocab, list[int | None], list[str]]:
    """Our vocabulary (specials first, normalised words) and, per our id, the user's row (None: new row)."""
    words: list[str] = list(SPECIALS)
    src: list[int | None] = [None] * len(SPECIALS)
    index: dict[str, int] = {}
    dropped = 0
    for i, w in enumerate(plan.words or []):
        n = _ALIASES.get(w.lower()) if w.lower() in _ALIASES else normalize(w)
        if n in SPECIALS:
            slot = SPECIALS.index(n)
            if src[slot] is None:
                src[slot] = i
            else:
                dropped += 1
            continue
        if n in index:
            dropped += 1
            continue
        index[n] = len(words)
        words.append(n)
        src.append(i)
    warnings = []
    if dropped:
        warnings.append(f"{dropped} vocabulary entries fold to a word already present after normalisation "
                        "(lower case, numbers -> N); the first one is kept")
    missing = [SPECIALS[i] for i in range(len(SPECIALS)) if src[i] is None]
    if missing:
        warnings.append(f"the vocabulary lacks {', '.join(missing)}; added with zero embeddings")
    train_counts = Counter(corpus.tokens("train"))
    if plan.counts is not None:
        freq = [0] * len(words)
        for our_id, row in enumerate(src):
            if row is not None:
                freq[our_id] = plan.counts[row]
    else:
        freq = [train_counts.get(w, 0) for w in words]
        freq[words.index(UNK)] = sum(c for w, c in train_counts.items() if w not in index and w not in SPECIALS)
    pos = {w: corpus.pos_counts[w].most_common(1)[0][0] for w in words if corpus.pos_counts.get(w)}
    return Vocab(words, freq, pos), src, warnings


def _permute_rows(t: torch.Tensor, src: list[int | None], fill: float = 0.0) -> torch.Tensor:
    out = torch.full((len(src),) + tuple(t.shape[1:]), fill, dtype=t.dtype)
    have = [i for i, s in enumerate(src) if s is not None]
    out[have] = t[[src[i] for i in have]]
    return out


def _evaluate(model: RecurrentModel, vocab: Vocab, corpus: Corpus) -> list[dict[str, Any]]:
    from .train import batchify, evaluate_classifier, evaluate_lm, lm_stream

    rows = []
    for split in ("valid", "test"):
        if model.cfg.task == "lm":
            stream = lm_stream(corpus, vocab, split)
            if stream.numel() < 4:
                continue
            m = evaluate_lm(model, batchify(stream, max(1, min(10, stream.numel() // 2))), 35)
        else:
            m = evaluate_classifier(model, [vocab.encode(d) for d in corpus.splits[split]], corpus.labels[split])
        rows.append({"epoch": 0, "split": split, **m, "tokens_per_s": None, "wall_s": None})
    return rows


#: What an uploaded RNNVis checkpoint says about itself that the import does not recompute: kept, as a bounded
#: summary (:func:`models.summary.summarize`), under ``imported.reported_by_uploader`` and shown as such, never
#: as the model's own record.
REPORTED_KEYS = ("metrics", "corpus", "created_at", "created_by", "name", "train_config")
_LABELS = Limits(depth=1, items=100, text=100, nodes=101)


def _train_config(reported: Any, corpus_spec: str, vocab_size: int) -> dict[str, Any]:
    """The imported model's training settings: the uploader's scalar ones of the right type and in bounds,
    with the corpus the import used (``corpus_spec``): nothing the uploader wrote is a path read later."""
    defaults = TrainConfig(corpus=corpus_spec, vocab_size=vocab_size, epochs=1)
    if not isinstance(reported, dict):
        return asdict(defaults)
    kept = {}
    for f in dataclasses.fields(TrainConfig):
        v = reported.get(f.name)
        if f.name in ("corpus", "vocab_size") or type(v) is not type(getattr(defaults, f.name)):
            continue
        try:
            dataclasses.replace(TrainConfig(), **{f.name: v}).validate()  # each value checked on its own
        except (ValueError, TypeError):
            continue
        kept[f.name] = v
    return asdict(dataclasses.replace(defaults, **kept))


def _typed_vocab(vocab: Any) -> Any:
    """An uploaded vocabulary as data: its words and counts (checked by :func:`models.checkpoint.checked_parts`)
    and the part-of-speech tags of its words that are short strings; nothing else it holds."""
    if not isinstance(vocab, dict):
        return vocab  # refused with a message by checked_parts
    pos = vocab.get("pos") if isinstance(vocab.get("pos"), dict) else {}
    words = vocab.get("words")
    known = set(words) if isinstance(words, list) and all(isinstance(w, str) for w in words) else set()
    return {"words": words, "freq": vocab.get("freq"),
            "pos": {w: t for w, t in pos.items() if w in known and isinstance(t, str) and len(t) <= 16}}


def _import_checkpoint(plan: ImportPlan, model_id: str, path: Path, corpus: Corpus, *, corpus_spec: str,
                       file_name: str, name: str | None, created_by: str, now: str) -> ImportResult:
    """An uploaded RNNVis checkpoint: its weights, vocabulary and shapes, metrics recomputed on ``corpus``; what
    the uploader wrote about it (metrics, corpus, dates, training settings) kept apart, summarised, as
    reported."""
    src = plan.checkpoint or {}
    reported = {k: summarize(src[k]) for k in REPORTED_KEYS if k in src}
    ckpt = {k: src[k] for k in ("model_config", "state_dict") if k in src}
    ckpt["vocab"] = _typed_vocab(src.get("vocab"))
    labels = summarize(src.get("label_names") or [], _LABELS)
    ckpt.update(model_id=model_id, name=name or model_id, created_by=created_by, created_at=now, complete=True,
                corpus=corpus.name, label_names=[str(x) for x in labels] if isinstance(labels, list) else [],
                imported={"source": "rnnvis", "file": file_name, "recomputed": ["metrics"],
                          "reported_by_uploader": reported})
    try:
        model, vocab = model_from_checkpoint(ckpt)
    except CheckpointError as e:
        raise ModelImportError(str(e)) from None
    ckpt["train_config"] = _train_config(src.get("train_config"), corpus_spec, len(vocab))
    ckpt["metrics"] = _evaluate(model, vocab, corpus)
    save_checkpoint(path, ckpt)
    test = next((m for m in ckpt["metrics"] if m["split"] == "test"), {})
    summary = {"source": "rnnvis", "vocab_size": len(vocab), "test_loss": test.get("loss"),
               "test_perplexity": test.get("perplexity"), "test_accuracy": test.get("accuracy"),
               "reported_by_uploader": sorted(reported)}
    return ImportResult(model_id, path, summary, plan.warnings)


def import_model(model_id: str, weights_path: str | Path, vocab_path: str | Path | None, store_root: str | Path, *,
                 corpus: Corpus, corpus_spec: str, name: str | None = None, created_by: str = "import",
                 max_params: int = DEFAULT_MAX_PARAMS) -> ImportResult:
    """Write an RNNVis checkpoint for an uploaded model; its metrics are computed here on ``corpus`` (valid and
    test), whatever the file says."""
    check_model_id(model_id)
    plan = inspect_model(weights_path, vocab_path, max_params=max_params)
    if plan.config.task != corpus.task:
        raise ModelImportError(f"the model is a {plan.config.task} model but corpus {corpus.name!r} is for "
                               f"{corpus.task}")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path = checkpoint_file(store_root, model_id)
    if plan.source == "rnnvis":
        return _import_checkpoint(plan, model_id, path, corpus, corpus_spec=corpus_spec,
                                  file_name=Path(weights_path).name, name=name, created_by=created_by, now=now)

    vocab, src, warnings = _build_vocab(plan, corpus)
    cfg = plan.config
    cfg.vocab_size = len(vocab)
    state = {k: v.float() for k, v in plan.tensors.items()}
    state["embed.weight"] = _permute_rows(state["embed.weight"], src)
    if cfg.task == "lm":
        state["head.weight"] = _permute_rows(state["head.weight"], src)
        state["head.bias"] = _permute_rows(state["head.bias"], src, MISSING_LOGIT_BIAS)
    model = RecurrentModel(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelImportError(f"the weights do not fit the inferred model: {e}") from None
    model.eval()
    metrics = _evaluate(model, vocab, corpus)
    tc = TrainConfig(corpus=corpus_spec, vocab_size=len(vocab), epochs=1)
    label_names = list(SENTIMENT_LABELS) if cfg.task == "sentiment" and cfg.num_classes == 2 else \
        [f"class {i}" for i in range(cfg.num_classes)] if cfg.task == "sentiment" else []
    ckpt = {"model_id": model_id, "name": name or model_id, "corpus": corpus.name, "created_by": created_by,
            "created_at": now, "label_names": label_names, "vocab": vocab.to_dict(), "model_config": asdict(cfg),
            "train_config": asdict(tc),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "metrics": metrics, "complete": True,
            "imported": {"source": "state_dict", "file": Path(weights_path).name, "recomputed": ["metrics"],
                         "reported_by_uploader": {}}}
    save_checkpoint(path, ckpt)
    test = next((m for m in metrics if m["split"] == "test"), {})
    summary = {"source": "state_dict", "cell": cfg.cell, "layers": cfg.layers, "hidden_size": cfg.hidden_size,
               "vocab_size": len(vocab), "test_loss": test.get("loss"),
               "test_perplexity": test.get("perplexity"), "test_accuracy": test.get("accuracy")}
    if test.get("perplexity") is not None and math.isfinite(test["perplexity"]):
        summary["test_perplexity"] = round(test["perplexity"], 3)
    return ImportResult(model_id, path, summary, plan.warnings + warnings)
