"""Pre-trained demo models shipped in the repository.

Training the four demo models long enough to show the paper's findings takes
longer on two cores than a first look should, so ``rnnvis demo`` installs
these checkpoints into the store and only analyses them; ``rnnvis demo
--rebuild`` trains them from scratch with the same presets (``rnnvis train
--preset demo-lstm`` and so on: deterministic for a given seed, CPU and
thread count).

A shipped file is the checkpoint without its resume state (last weights,
optimizer), with the best weights rounded to float16 and the whole
``torch.save`` payload xz-compressed: about a third of the float32 size.
Reading it returns an ordinary checkpoint dict with float32 weights.
"""
from __future__ import annotations

import io
import lzma
import os
from pathlib import Path
from typing import Any

import torch

from .checkpoint import FORMAT, CheckpointError, check_model_id, checkpoint_file, read_checkpoint, save_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "demo_data" / "weights"


def weights_file(model_id: str, directory: str | os.PathLike = WEIGHTS_DIR) -> Path:
    return Path(directory) / f"{check_model_id(model_id)}.pt.xz"


def pack(ckpt: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``ckpt`` (a complete checkpoint) as a shipped demo file."""
    if not ckpt.get("complete"):
        raise CheckpointError(f"{ckpt.get('model_id')} has not finished training; train it to the end first")
    slim = {k: v for k, v in ckpt.items() if k != "resume"}
    slim["state_dict"] = {k: v.to(torch.float16) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    slim["shipped"] = {"dtype": "float16"}
    buf = io.BytesIO()
    torch.save(slim, buf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return path


def unpack(path: str | os.PathLike) -> dict[str, Any]:
    """A shipped file as a checkpoint dict with float32 weights."""
    try:
        ckpt = torch.load(io.BytesIO(lzma.decompress(Path(path).read_bytes())), map_location="cpu",
                          weights_only=True)
    except (OSError, lzma.LZMAError, RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable demo checkpoint ({e}); restore it with git checkout, "
                              f"or train the demo models again with `rnnvis demo --rebuild`") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an RNNVis demo checkpoint")
    ckpt["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    return ckpt


def shipped(model_id: str, directory: str | os.PathLike = WEIGHTS_DIR) -> bool:
    return weights_file(model_id, directory).is_file()


def install(store_root: str | os.PathLike, model_id: str, directory: str | os.PathLike = WEIGHTS_DIR) -> Path:
    """Put the shipped checkpoint of ``model_id`` into a store (atomically); returns its path."""
    ckpt = unpack(weights_file(model_id, directory))
    ckpt = {k: v for k, v in ckpt.items() if k != "format"}
    return save_checkpoint(checkpoint_file(store_root, model_id), ckpt)


def pack_from_store(store_root: str | os.PathLike, model_id: str,
                    directory: str | os.PathLike = WEIGHTS_DIR) -> Path:
    """Maintainers: ship the trained ``model_id`` of a store (``rnnvis pack-demo-weights``)."""
    return pack(read_checkpoint(checkpoint_file(store_root, model_id)), weights_file(model_id, directory))
