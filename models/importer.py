"""Bring your own model: turn an uploaded checkpoint or PyTorch state dict into an RNNVis checkpoint.

Accepted:

- an RNNVis checkpoint (``rnnvis train`` writes them; see :mod:`models.checkpoint`);
- a plain ``state_dict`` (``torch.save(model.state_dict(), f)``, or a dict
  holding one under ``state_dict`` / ``model_state_dict`` / ``model``) of a
  model made of an embedding, one ``nn.RNN`` (tanh) / ``nn.GRU`` / ``nn.LSTM``
  (unidirectional, any number of layers, no ``proj_size``) and a linear output
  layer, plus its vocabulary file: one word per line in embedding-row order
  (``word`` or ``word<TAB>count``), or JSON (a list of words, ``{"itos": [...]}``,
  or ``{word: index}``). Parameter names do not matter (PyTorch's
  ``word_language_model`` uses ``encoder``/``rnn``/``decoder``); they are
  recognised by shape. An output layer as wide as the vocabulary makes a
  language model; a narrow one (2+ classes) a classifier that reads the last
  layer's final hidden state (class order: negative, positive).

Words are normalised like every RNNVis corpus (lower case, numbers -> ``N``)
and the special tokens ``<pad> <unk> <eos>`` moved to the front; rows are
permuted accordingly, so the imported model computes exactly what the
original did on the words it knows.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, check_checkpoint, check_model_id, checked_parts, checkpoint_file, \
    model_from_checkpoint, save_checkpoint
from .config import ModelConfig, TrainConfig
from .corpora import SENTIMENT_LABELS, Corpus
from .rnn import RecurrentModel
from .safe_load import DEFAULT_MAX_PARAMS, UnsafeFileError, count_params, load_lazily
from .text import EOS, PAD, SPECIALS, UNK, Vocab, normalize

log = logging.getLogger(__name__)

_CELLS = {1: "rnn", 3: "gru", 4: "lstm"}
_RNN_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight|bias)_(?P<dir>ih|hh|hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$")
_ALIASES = {"<pad>": PAD, "[pad]": PAD, "<blank>": PAD, "<unk>": UNK, "[unk]": UNK, "<oov>": UNK,
            "<eos>": EOS, "</s>": EOS, "[sep]": EOS}
_EMBED_HINTS = ("emb", "encoder", "word", "lookup")
_HEAD_HINTS = ("decoder", "head", "fc", "out", "linear", "classifier", "proj", "dense", "logit")
MISSING_LOGIT_BIAS = -30.0
MAX_VOCAB_WORDS = 2_000_000   # parsing is bounded: a 50 MB file of one-letter lines would be 25 M strings


class ModelImportError(ValueError):
    """An uploaded model that cannot be imported; ``field`` is ``weights`` or ``vocab``."""

    def __init__(self, message: str, field: str = "weights"):
        super().__init__(message)
        self.field = field


@dataclass
class ImportPlan:
    source: str                              # "rnnvis" or "state_dict"
    config: ModelConfig
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)   # our parameter names, user row order
    words: list[str] | None = None           # the user's vocabulary, in embedding-row order
    counts: list[int] | None = None
    checkpoint: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        c = self.config
        kind = "language model" if c.task == "lm" else f"classifier ({c.num_classes} classes)"
        return (f"{'RNNVis checkpoint' if self.source == 'rnnvis' else 'PyTorch state dict'}: {c.layers}x{c.hidden_size} "
                f"{c.cell.upper()} {kind}, embedding {c.embed_size}, vocabulary {c.vocab_size}")


@dataclass
class ImportResult:
    model_id: str
    checkpoint: Path
    summary: dict[str, Any]
    warnings: list[str]


def _load(path: Path) -> Any:
    """The file's object, its tensors mapped from the file; nothing it declares is allocated."""
    try:
        return load_lazily(path, max_bytes=path.stat().st_size)
    except (UnsafeFileError, OSError) as e:
        raise ModelImportError(str(e)) from None


def _state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise ModelImportError("the file holds no state dict (a mapping of parameter names to tensors)")


def _read_vocab(path: Path, max_words: int = MAX_VOCAB_WORDS) -> tuple[list[str], list[int] | None]:
    text = path.read_text(encoding="utf-8", errors="replace")
    stripped = text.lstrip()
    json_like = stripped[:1] in "[{"
    if (text.count(",") if json_like else text.count("\n")) > max_words:  # an upper bound, counted before parsing
        raise ModelImportError(f"{path.name} has more than {max_words:,} entries; the largest vocabulary "
                               "imported is that", "vocab")
    if json_like:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ModelImportError(f"{path.name}: invalid JSON ({e})", "vocab") from None
        if isinstance(data, dict):
            for key in ("itos", "words", "idx2word", "index_to_word"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if isinstance(data, list) and all(isinstance(w, str) for w in data):
            return list(data), None
        if isinstance(data, dict) and all(isinstance(v, int) for v in data.values()):
            order = sorted(data.items(), key=lambda kv: kv[1])
            if [i for _, i in order] != list(range(len(order))):
                raise ModelImportError(f"{path.name}: word indices must be 0..N-1 without gaps", "vocab")
            return [w for w, _ in order], None
        raise ModelImportError(f"{path.name}: expected a JSON list of words or a {{word: index}} mapping", "vocab")
    words, counts = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        words.append(parts[0].strip())
        if len(parts) > 1 and parts[1].strip().lstrip("-").isdigit():
            counts.append(int(parts[1]))
    if not words:
        raise ModelImportError(f"{path.name} holds no words", "vocab")
    return words, counts if len(counts) == len(words) else None


def _pick(cands: list[str], hints: tuple[str, ...]) -> str | None:
    hinted = [k for k in cands if any(h in k.lower() for h in hints)]
    if len(hinted) == 1:
        return hinted[0]
    if len(cands) == 1:
        return cands[0]
    return None


def _plan_state_dict(sd: dict[str, torch.Tensor], vocab_path: Path | None) -> ImportPlan:
    rnn: dict[tuple[str, str, int], torch.Tensor] = {}
    prefixes = set()
    for key, t in sd.items():
        m = _RNN_KEY.match(key)
        if not m:
            continue
        if m["rev"]:
            raise ModelImportError("bidirectional recurrent layers are not supported (found "
                                   f"{key}); RNNVis reads a network left to right")
        if m["dir"] == "hr":
            raise ModelImportError(f"LSTM with proj_size is not supported (found {key})")
        prefixes.add(m["prefix"])
        rnn[(m["kind"], m["dir"], int(m["layer"]))] = t   # as stored (mapped); made float32 by the import
    if not rnn:
        raise ModelImportError("no recurrent layer found: expected nn.RNN/nn.GRU/nn.LSTM parameters named "
                               "like rnn.weight_ih_l0, rnn.weight_hh_l0")
    if len(prefixes) > 1:
        raise ModelImportError(f"several recurrent modules found ({', '.join(sorted(prefixes))}); "
                               "only one stacked nn.RNN/GRU/LSTM is supported")
    prefix = prefixes.pop()
    layers = 1 + max(k[2] for k in rnn)
    for layer in range(layers):
        for d in ("ih", "hh"):
            if ("weight", d, layer) not in rnn:
                raise ModelImportError(f"missing {prefix}weight_{d}_l{layer}")
    whh = rnn[("weight", "hh", 0)]
    hidden = whh.shape[1]
    gates = whh.shape[0] // max(hidden, 1)
    if gates not in _CELLS or whh.shape[0] != gates * hidden:
        raise ModelImportError(f"{prefix}weight_hh_l0 has shape {tuple(whh.shape)}, which is no RNN, GRU or LSTM")
    cell = _CELLS[gates]
    embed = rnn[("weight", "ih", 0)].shape[1]
    for layer in range(1, layers):
        if tuple(rnn[("weight", "ih", layer)].shape) != (gates * hidden, hidden):
            raise ModelImportError(f"{prefix}weight_ih_l{layer} has an unexpected shape")
    rnn_keys = {k for k in sd if k.startswith(prefix) and _RNN_KEY.match(k)}
    others = {k: v for k, v in sd.items() if k not in rnn_keys and v.is_floating_point()}
    emb_cands = [k for k, v in others.items() if v.dim() == 2 and v.shape[1] == embed]
    emb_key = _pick(emb_cands, _EMBED_HINTS)
    if emb_key is None:
        raise ModelImportError(f"no embedding found: expected one 2-D tensor of shape [vocab, {embed}] "
                               f"(candidates: {', '.join(emb_cands) or 'none'})")
    head_cands = [k for k, v in others.items() if v.dim() == 2 and v.shape[1] == hidden and k != emb_key]
    head_key = _pick(head_cands, _HEAD_HINTS)
    warnings: list[str] = []
    if head_key is None and not head_cands and embed == hidden:
        head_key = emb_key  # tied weights saved once
        warnings.append("output layer tied to the embedding")
    if head_key is None:
        raise ModelImportError(f"no output layer found: expected one 2-D weight of shape [outputs, {hidden}] "
                               f"(candidates: {', '.join(head_cands) or 'none'})")
    head_w = others[head_key]
    bias_key = head_key[: -len("weight")] + "bias" if head_key.endswith("weight") else None
    head_b = others.get(bias_key) if bias_key and head_key != emb_key else None
    if head_b is None or head_b.shape != (head_w.shape[0],):
        head_b = torch.zeros(head_w.shape[0])
        warnings.append("output layer has no bias; using zeros")
    used = {emb_key, head_key} | ({bias_key} if bias_key in others else set())
    extra = [k for k, v in others.items() if k not in used and v.numel() > 1]
    if extra:
        raise ModelImportError(f"unsupported extra parameters {', '.join(extra[:5])}: only an embedding, one "
                               "recurrent module and one linear output layer can be imported")
    emb = others[emb_key]
    vocab_rows, outputs = emb.shape[0], head_w.shape[0]
    task = "lm" if outputs == vocab_rows else "sentiment"
    if task == "sentiment" and not 2 <= outputs <= 100:
        raise ModelImportError(f"output layer has {outputs} outputs: neither the vocabulary size ({vocab_rows}) "
                               "of a language model nor a few classes")
    tensors = {"embed.weight": emb, "head.weight": head_w, "head.bias": head_b}
    for layer in range(layers):
        for kind in ("weight", "bias"):
            for d in ("ih", "hh"):
                t = rnn.get((kind, d, layer))
                if t is None:
                    t = torch.zeros(gates * hidden)
                    if f"no {kind}" not in " ".join(warnings):
                        warnings.append("recurrent layer has no biases; using zeros")
                tensors[f"rnn.{kind}_{d}_l{layer}"] = t
    if vocab_path is None:
        raise ModelImportError("a plain state dict needs its vocabulary file (one word per line, in "
                               "embedding-row order)", "vocab")
    words, counts = _read_vocab(vocab_path)
    if len(words) != vocab_rows:
        raise ModelImportError(f"the vocabulary has {len(words)} words but the embedding has {vocab_rows} rows; "
                               "upload the vocabulary the model was trained with", "vocab")
    cfg = ModelConfig(task, cell, layers, hidden, embed, 0.0, vocab_rows, outputs if task == "sentiment" else 2)
    if cell == "rnn":
        warnings.append("vanilla RNN imported with tanh (a relu RNN would be computed wrongly)")
    return ImportPlan("state_dict", cfg, tensors, words, counts, warnings=warnings)


def inspect_model(weights_path: str | Path, vocab_path: str | Path | None = None, *,
                  max_params: int = DEFAULT_MAX_PARAMS) -> ImportPlan:
    """Read an uploaded model and work out its architecture; ModelImportError says what is wrong.

    Cheap and bounded whatever the file declares (see :mod:`models.safe_load`): the tensors stay mapped
    from the file, a config's shapes are computed and checked against its weights' and ``max_params``,
    and no model is built."""
    weights_path = Path(weights_path)
    obj = _load(weights_path)
    if isinstance(obj, dict) and obj.get("format") == "rnnvis-checkpoint":
        try:
            ckpt = check_checkpoint(obj, weights_path.name)
            cfg, _ = checked_parts(ckpt, max_params)
        except CheckpointError as e:
            raise ModelImportError(str(e).replace(str(weights_path), weights_path.name)) from None
        return ImportPlan("rnnvis", cfg, checkpoint=ckpt)
    sd = _state_dict(obj)
    n = count_params(sd)
    if n > max_params:
        raise ModelImportError(f"the state dict holds {n / 1e6:.1f} M parameters; the limit is "
                               f"{max_params / 1e6:.0f} M (RNNVIS_MAX_MODEL_MPARAMS)")
    return _plan_state_dict(sd, Path(vocab_path) if vocab_path else None)


def _build_vocab(plan: ImportPlan, corpus: Corpus) -> tuple[Vocab, list[int | None], list[str]]:
    """Our vocabulary (specials first, normalised words) and, per our id, the user's row (None: new row)."""
    words: list[str] = list(SPECIALS)
    src: list[int | None] = [None] * len(SPECIALS)
    index: dict[str, int] = {}
    dropped = 0
    for i, w in enumerate(plan.words or []):
        n = _ALIASES.get(w.lower(), None) if w.lower() in _ALIASES else normalize(w)
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


#: What an uploaded RNNVis checkpoint says about itself that the import does not recompute: kept under
#: ``imported.reported_by_uploader`` and shown as such, never as the model's own record.
REPORTED_KEYS = ("metrics", "corpus", "created_at", "created_by", "name", "train_config")


def _import_checkpoint(plan: ImportPlan, model_id: str, path: Path, corpus: Corpus, *, file_name: str,
                       name: str | None, created_by: str, now: str) -> ImportResult:
    """An uploaded RNNVis checkpoint: its weights and vocabulary, metrics recomputed on ``corpus``; what the
    uploader wrote about it (metrics, corpus, dates, training settings) kept apart as reported."""
    src = plan.checkpoint or {}
    reported = {k: src[k] for k in REPORTED_KEYS if k in src}
    ckpt = {k: src[k] for k in ("model_config", "vocab", "state_dict", "label_names") if k in src}
    ckpt.update(model_id=model_id, name=name or model_id, created_by=created_by, created_at=now, complete=True,
                corpus=corpus.name, train_config=src.get("train_config") or {},
                imported={"source": "rnnvis", "file": file_name, "recomputed": ["metrics"],
                          "reported_by_uploader": reported})
    try:
        model, vocab = model_from_checkpoint(ckpt)
    except CheckpointError as e:
        raise ModelImportError(str(e)) from None
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
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    path = checkpoint_file(store_root, model_id)
    if plan.source == "rnnvis":
        return _import_checkpoint(plan, model_id, path, corpus, file_name=Path(weights_path).name, name=name,
                                  created_by=created_by, now=now)

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
            "train_config": asdict(tc), "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "metrics": metrics, "complete": True, "imported": {"source": "state_dict", "file": Path(weights_path).name, "recomputed": ["metrics"],
                         "reported_by_uploader": {}}}
    save_checkpoint(path, ckpt)
    test = next((m for m in metrics if m["split"] == "test"), {})
    summary = {"source": "state_dict", "cell": cfg.cell, "layers": cfg.layers, "hidden_size": cfg.hidden_size,
               "vocab_size": len(vocab), "test_loss": test.get("loss"),
               "test_perplexity": test.get("perplexity"), "test_accuracy": test.get("accuracy")}
    if test.get("perplexity") is not None and math.isfinite(test["perplexity"]):
        summary["test_perplexity"] = round(test["perplexity"], 3)
    return ImportResult(model_id, path, summary, plan.warnings + warnings)
