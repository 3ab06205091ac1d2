"""Corpora, vocabularies, recurrent models, training, checkpoints and tracing.

The stable notebook API::

    from models import load_model
    model, vocab = load_model("demo-lstm", store="var/store")
    ids = torch.tensor(vocab.encode("the food is good".split()))[:, None]   # [T, 1]
    states = model.trace(ids)            # {(layer, "h"|"c"|gate): [T, 1, H]}

The names below are imported on first use (PEP 562), so that importing a
torch-free submodule such as ``models.config`` or ``models.paths`` does not
import torch (2-3 s) on the way: the command line's quick commands rely on it.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "checkpoint", "load_model": "checkpoint",
    "PRESETS": "config", "ConfigError": "config", "ModelConfig": "config", "TrainConfig": "config",
    "get_preset": "config",
    "Corpus": "corpora", "CorpusError": "corpora", "load_corpus": "corpora",
    "RecurrentModel": "rnn",
    "Vocab": "text", "normalize": "text", "tokenize": "text",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
