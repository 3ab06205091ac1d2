"""Checkpoints: plain dicts that ``torch.load(..., weights_only=True)`` reads.

Keys: ``format``, ``version``, ``model_id``, ``name``, ``model_config``,
``train_config`` (dicts), ``vocab`` (words, freq, pos), ``label_names``,
``corpus``, ``state_dict`` (the best weights), ``metrics`` (one dict per epoch
and split), ``created_at``, ``created_by``, ``complete`` and ``resume`` (last
weights, optimizer state, epoch, lr, early-stopping counters).
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, TrainConfig
from .paths import ID_PATTERN, check_model_id, checkpoint_file  # noqa: F401 (re-exported)
from .rnn import RecurrentModel
from .text import Vocab

FORMAT, VERSION = "rnnvis-checkpoint", 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or not ours."""


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Write atomically: a killed writer leaves the previous checkpoint or none, never half a file.

    A failed write (disk full, file size limit, I/O error) is a CheckpointError that says so, and leaves
    no temporary file behind."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **ckpt}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (RuntimeError, OSError) as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot write checkpoint {path} ({first}); disk full? free space and retry") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); "
                              f"re-train the model or upload the file again") from None
    return check_checkpoint(ckpt, str(path))


def check_checkpoint(ckpt: Any, where: str) -> dict[str, Any]:
    """``ckpt`` if it is an RNNVis checkpoint dict with its essential keys, else CheckpointError."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not an RNNVis checkpoint (no format={FORMAT!r} key); "
                              f"plain PyTorch state dicts are imported with `rnnvis import`")
    for key in ("model_config", "vocab", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{where} lacks {key!r}; the file is incomplete")
    if not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError(f"{where}: 'state_dict' is not a mapping of parameter names to tensors")
    return ckpt


def checked_parts(ckpt: dict[str, Any], max_params: float | None = None) -> tuple[ModelConfig, Vocab]:
    """The config and vocabulary of a checkpoint, checked against each other and against the shapes of its
    weights (and ``max_params``) before anything is allocated; CheckpointError says what is wrong."""
    from .safe_load import UnsafeFileError, check_declared

    try:
        cfg = ModelConfig(**ckpt["model_config"]).validate()
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"checkpoint model config is malformed ({type(e).__name__}: {e})") from None
    try:
        vocab = Vocab.from_dict(ckpt["vocab"])
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise CheckpointError(f"checkpoint vocabulary is malformed ({type(e).__name__}: {e}); it needs "
                              "'words' (a list of strings) and 'freq' (a list of counts)") from None
    if not all(isinstance(w, str) for w in vocab.words):
        raise CheckpointError("checkpoint vocabulary is malformed: its 'words' must all be strings")
    if cfg.vocab_size != len(vocab):
        raise CheckpointError(f"checkpoint vocabulary has {len(vocab)} words but the model expects {cfg.vocab_size}")
    try:
        check_declared(cfg, ckpt["state_dict"], max_params or float("inf"))
    except UnsafeFileError as e:
        raise CheckpointError(f"checkpoint: {e}") from None
    return cfg, vocab


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu", *,
                          max_params: float | None = None) -> tuple[RecurrentModel, Vocab]:
    cfg, vocab = checked_parts(ckpt, max_params)
    model = RecurrentModel(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit its model config: {e}") from None
    return model.to(device).eval(), vocab


def load_model(path_or_model_id: str | os.PathLike, store: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> tuple[RecurrentModel, Vocab]:
    """Load ``(model, vocab)`` from a checkpoint path or a model id in ``store``.

    ``store`` defaults to ``$RNNVIS_STORE`` or ``var/store``.  The model is in
    eval mode on ``device``.
    """
    p = Path(path_or_model_id)
    if p.suffix != ".pt" or not p.exists():
        p = find_checkpoint(store or os.environ.get("RNNVIS_STORE", "var/store"), str(path_or_model_id))
    return model_from_checkpoint(read_checkpoint(p), device)


def find_checkpoint(store_root: str | os.PathLike, model_id: str) -> Path:
    """The checkpoint of ``model_id``; CheckpointError listing the known models if there is none."""
    p = checkpoint_file(store_root, model_id)
    if not p.exists():
        known = sorted(x.stem for x in (Path(store_root) / "checkpoints").glob("*.pt"))
        raise CheckpointError(f"unknown model {model_id!r} in store {store_root}; "
                              f"known: {', '.join(known) or 'none (train one with `rnnvis train`)'}")
    return p


def configs_of(ckpt: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    tc = {f.name for f in dataclasses.fields(TrainConfig)}
    return ModelConfig(**ckpt["model_config"]), TrainConfig.from_dict(
        {k: v for k, v in ckpt.get("train_config", {}).items() if k in tc})
