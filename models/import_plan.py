"""Read an uploaded model and work out what it is, without building it (:func:`inspect_model`).

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

Cheap and bounded whatever the file declares, so that the web process can run it on an upload: the
tensors stay mapped from the file (:mod:`models.safe_load`) and shapes are checked before anything is
allocated.  :mod:`models.importer` then writes the RNNVis checkpoint.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, check_checkpoint, checked_parts
from .config import ModelConfig
from .safe_load import DEFAULT_MAX_PARAMS, UnsafeFileError, count_params, load_lazily

__all__ = ["ModelImportError", "ImportPlan", "inspect_model", "MAX_VOCAB_WORDS"]

_CELLS = {1: "rnn", 3: "gru", 4: "lstm"}
_RNN_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight|bias)_(?P<dir>ih|hh|hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$")
_EMBED_HINTS = ("emb", "encoder", "word", "lookup")
_HEAD_HINTS = ("decoder", "head", "fc", "out", "linear", "classifier", "proj", "dense", "logit")
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
        what = "RNNVis checkpoint" if self.source == "rnnvis" else "PyTorch state dict"
        return (f"{what}: {c.layers}x{c.hidden_size} {c.cell.upper()} {kind}, embedding {c.embed_size}, "
                f"vocabulary {c.vocab_size}")


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


_VOCAB_LIST_KEYS = ("itos", "words", "idx2word", "index_to_word")


def _vocab_from_json(data: Any, name: str) -> list[str]:
    """The words of a JSON vocabulary: a list of words, ``{"itos": [...]}`` (or words, idx2word, ...), or
    ``{word: index}`` with indices 0..N-1."""
    if isinstance(data, dict):
        data = next((data[k] for k in _VOCAB_LIST_KEYS if isinstance(data.get(k), list)), data)
    if isinstance(data, list) and all(isinstance(w, str) for w in data):
        return list(data)
    if isinstance(data, dict) and all(isinstance(v, int) for v in data.values()):
        order = sorted(data.items(), key=lambda kv: kv[1])
        if [i for _, i in order] != list(range(len(order))):
            raise ModelImportError(f"{name}: word indices must be 0..N-1 without gaps", "vocab")
        return [w for w, _ in order]
    raise ModelImportError(f"{name}: expected a JSON list of words or a {{word: index}} mapping", "vocab")


def _vocab_from_lines(text: str, name: str) -> tuple[list[str], list[int] | None]:
    """One word per line, optionally ``word<TAB>count`` (or ``word count``)."""
    words, counts = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        words.append(parts[0].strip())
        if len(parts) > 1 and parts[1].strip().lstrip("-").isdigit():
            counts.append(int(parts[1]))
    if not words:
        raise ModelImportError(f"{name} holds no words", "vocab")
    return words, counts if len(counts) == len(words) else None


def _read_vocab(path: Path, max_words: int = MAX_VOCAB_WORDS) -> tuple[list[str], list[int] | None]:
    text = path.read_text(encoding="utf-8", errors="replace")
    json_like = text.lstrip()[:1] in "[{"
    if (text.count(",") if json_like else text.count("\n")) > max_words:  # an upper bound, counted before parsing
        raise ModelImportError(f"{path.name} has more than {max_words:,} entries; the largest vocabulary "
                               "imported is that", "vocab")
    if not json_like:
        return _vocab_from_lines(text, path.name)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ModelImportError(f"{path.name}: invalid JSON ({str(e)[:200]})", "vocab") from None
    return _vocab_from_json(data, path.name), None


def _pick(cands: list[str], hints: tuple[str, ...]) -> str | None:
    hinted = [k for k in cands if any(h in k.lower() for h in hints)]
    if len(hinted) == 1:
        return hinted[0]
    if len(cands) == 1:
        return cands[0]
    return None


@dataclass
class _Recurrent:
    """The recurrent module of a state dict: its tensors by (weight/bias, ih/hh, layer), as stored (mapped)."""

    prefix: str
    params: dict[tuple[str, str, int], torch.Tensor]
    layers: int = 0
    hidden: int = 0
    gates: int = 0
    embed: int = 0

    @property
    def cell(self) -> str:
        return _CELLS[self.gates]


def _recurrent_params(sd: dict[str, torch.Tensor]) -> _Recurrent:
    """The one stacked nn.RNN/GRU/LSTM of ``sd``, found by parameter names."""
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
    return _shaped(_Recurrent(prefixes.pop(), rnn))


def _shaped(r: _Recurrent) -> _Recurrent:
    """``r`` with its layers, hidden size, gates and input size, checked against every layer's weights."""
    r.layers = 1 + max(k[2] for k in r.params)
    for layer in range(r.layers):
        for d in ("ih", "hh"):
            if ("weight", d, layer) not in r.params:
                raise ModelImportError(f"missing {r.prefix}weight_{d}_l{layer}")
    whh = r.params[("weight", "hh", 0)]
    r.hidden = whh.shape[1]
    r.gates = whh.shape[0] // max(r.hidden, 1)
    if r.gates not in _CELLS or whh.shape[0] != r.gates * r.hidden:
        raise ModelImportError(f"{r.prefix}weight_hh_l0 has shape {tuple(whh.shape)}, which is no RNN, GRU or LSTM")
    r.embed = r.params[("weight", "ih", 0)].shape[1]
    for layer in range(1, r.layers):
        if tuple(r.params[("weight", "ih", layer)].shape) != (r.gates * r.hidden, r.hidden):
            raise ModelImportError(f"{r.prefix}weight_ih_l{layer} has an unexpected shape")
    return r


def _embedding_key(others: dict[str, torch.Tensor], embed: int) -> str:
    cands = [k for k, v in others.items() if v.dim() == 2 and v.shape[1] == embed]
    key = _pick(cands, _EMBED_HINTS)
    if key is None:
        raise ModelImportError(f"no embedding found: expected one 2-D tensor of shape [vocab, {embed}] "
                               f"(candidates: {', '.join(cands) or 'none'})")
    return key


def _head(others: dict[str, torch.Tensor], r: _Recurrent, emb_key: str,
          warnings: list[str]) -> tuple[torch.Tensor, torch.Tensor, set[str]]:
    """The output layer's weight and bias (zeros if it has none) and the keys they used."""
    cands = [k for k, v in others.items() if v.dim() == 2 and v.shape[1] == r.hidden and k != emb_key]
    key = _pick(cands, _HEAD_HINTS)
    if key is None and not cands and r.embed == r.hidden:
        key = emb_key  # tied weights saved once
        warnings.append("output layer tied to the embedding")
    if key is None:
        raise ModelImportError(f"no output layer found: expected one 2-D weight of shape [outputs, {r.hidden}] "
                               f"(candidates: {', '.join(cands) or 'none'})")
    weight = others[key]
    bias_key = key[: -len("weight")] + "bias" if key.endswith("weight") else None
    bias = others.get(bias_key) if bias_key and key != emb_key else None
    if bias is None or bias.shape != (weight.shape[0],):
        bias = torch.zeros(weight.shape[0])
        warnings.append("output layer has no bias; using zeros")
    return weight, bias, {emb_key, key} | ({bias_key} if bias_key in others else set())


def _recurrent_tensors(r: _Recurrent, warnings: list[str]) -> dict[str, torch.Tensor]:
    """Our names for the recurrent weights; missing biases are zeros."""
    tensors = {}
    for layer in range(r.layers):
        for kind in ("weight", "bias"):
            for d in ("ih", "hh"):
                t = r.params.get((kind, d, layer))
                if t is None:
                    t = torch.zeros(r.gates * r.hidden)
                    if f"no {kind}" not in " ".join(warnings):
                        warnings.append("recurrent layer has no biases; using zeros")
                tensors[f"rnn.{kind}_{d}_l{layer}"] = t
    return tensors


def _plan_state_dict(sd: dict[str, torch.Tensor], vocab_path: Path | None) -> ImportPlan:
    r = _recurrent_params(sd)
    rnn_keys = {k for k in sd if k.startswith(r.prefix) and _RNN_KEY.match(k)}
    others = {k: v for k, v in sd.items() if k not in rnn_keys and v.is_floating_point()}
    warnings: list[str] = []
    emb_key = _embedding_key(others, r.embed)
    head_w, head_b, used = _head(others, r, emb_key, warnings)
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
    tensors = {"embed.weight": emb, "head.weight": head_w, "head.bias": head_b, **_recurrent_tensors(r, warnings)}
    if vocab_path is None:
        raise ModelImportError("a plain state dict needs its vocabulary file (one word per line, in "
                               "embedding-row order)", "vocab")
    words, counts = _read_vocab(vocab_path)
    if len(words) != vocab_rows:
        raise ModelImportError(f"the vocabulary has {len(words)} words but the embedding has {vocab_rows} rows; "
                               "upload the vocabulary the model was trained with", "vocab")
    cfg = ModelConfig(task, r.cell, r.layers, r.hidden, r.embed, 0.0, vocab_rows, outputs if task == "sentiment" else 2)
    if r.cell == "rnn":
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
