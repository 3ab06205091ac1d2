"""Reading an untrusted PyTorch file without letting it choose how much memory we spend.

Three ways a small upload can make its reader allocate gigabytes, and what stops each here:

- a zip-deflated tensor record (1 MB on disk, 1 GiB inflated): :func:`check_torch_zip` reads the zip's
  central directory only and refuses compressed records (``torch.save`` never writes any) and a total
  uncompressed size over the limit;
- tensor data: :func:`load_lazily` maps the file (``torch.load(mmap=True, weights_only=True)``), so a
  tensor is a view of the file's pages, not a copy; PyTorch checks each declared storage size against its
  record's size;
- a config that declares a big model (``hidden_size 8192`` with the weights of a 4-unit one):
  :func:`declared_shapes` computes the parameter shapes of a config (no memory), and
  :func:`check_declared` compares them with the cap and with the file's tensors before any model is
  built.
"""
from __future__ import annotations

import math
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig

__all__ = ["UnsafeFileError", "DEFAULT_MAX_PARAMS", "check_torch_zip", "load_lazily", "declared_shapes",
           "check_declared", "count_params"]

#: Largest model (parameters) an upload may declare or hold; RNNVIS_MAX_MODEL_MPARAMS sets it for jobs.
DEFAULT_MAX_PARAMS = 100_000_000
_MAX_RECORDS = 100_000
_MAX_PICKLE_BYTES = 64 << 20


class UnsafeFileError(ValueError):
    """A file that would cost more to read than allowed, or that is not a PyTorch zip file."""


def check_torch_zip(path: str | Path, max_bytes: int) -> None:
    """Refuse ``path`` unless it is a PyTorch zip file of stored (uncompressed) records totalling <= ``max_bytes``.

    Reads the central directory only: nothing is inflated."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UnsafeFileError(f"{path.name} is not a PyTorch file we can read safely ({e}); save the weights "
                              "with torch.save(model.state_dict(), path) (PyTorch 1.6 or later)") from None
    if len(infos) > _MAX_RECORDS:
        raise UnsafeFileError(f"{path.name} has {len(infos)} records; a PyTorch file of a model has a few hundred")
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size]
    if packed:
        raise UnsafeFileError(f"{path.name} has compressed records ({packed[0]}); torch.save writes none: "
                              "upload the file torch.save wrote, not a re-zipped one")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise UnsafeFileError(f"{path.name} holds {total / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if not any(i.filename.endswith("data.pkl") and i.file_size <= _MAX_PICKLE_BYTES for i in infos):
        raise UnsafeFileError(f"{path.name} is not a PyTorch file (no data.pkl record of at most "
                              f"{_MAX_PICKLE_BYTES >> 20} MB); save it with torch.save")


def load_lazily(path: str | Path, max_bytes: int) -> Any:
    """``torch.load`` of an untrusted file, its tensors mapped from the file (read-only views, no copies)."""
    path = Path(path)
    check_torch_zip(path, max_bytes)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, TypeError, IndexError, KeyError) as e:
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise UnsafeFileError(f"{path.name} is not a PyTorch file we can read safely ({msg}); save the weights "
                              f"with torch.save(model.state_dict(), path), not the whole model") from None


def count_params(tensors: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in tensors.values() if isinstance(t, torch.Tensor))


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def declared_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of :class:`models.rnn.RecurrentModel` for ``cfg``, computed (nothing allocated;
    a test keeps them equal to the model's own)."""
    g, h, e = _GATES[cfg.cell] * cfg.hidden_size, cfg.hidden_size, cfg.embed_size
    out = cfg.vocab_size if cfg.task == "lm" else cfg.num_classes
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (cfg.vocab_size, e)}
    for layer in range(cfg.layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (g, e if layer == 0 else h)
        shapes[f"rnn.weight_hh_l{layer}"] = (g, h)
        shapes[f"rnn.bias_ih_l{layer}"] = (g,)
        shapes[f"rnn.bias_hh_l{layer}"] = (g,)
    shapes.update({"head.weight": (out, h), "head.bias": (out,)})
    return shapes


def check_declared(cfg: ModelConfig, state_dict: Mapping[str, Any], max_params: int) -> None:
    """Refuse a config over ``max_params`` parameters, or whose shapes differ from ``state_dict``'s tensors."""
    declared = declared_shapes(cfg)
    n = sum(math.prod(s) for s in declared.values())
    if n > max_params:
        raise UnsafeFileError(f"the model declares {n / 1e6:.1f} M parameters ({cfg.layers}x{cfg.hidden_size} "
                              f"{cfg.cell}, vocabulary {cfg.vocab_size}); the limit is {max_params / 1e6:.0f} M "
                              "(RNNVIS_MAX_MODEL_MPARAMS)")
    got = {str(k): tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    missing = sorted(set(declared) - set(got))
    extra = sorted(set(got) - set(declared))
    wrong = [k for k in declared if k in got and got[k] != declared[k]]
    if missing or extra or wrong:
        what = (f"{wrong[0]} is {list(got[wrong[0]])} but the config needs {list(declared[wrong[0]])}" if wrong else
                f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(extra[:3])}")
        raise UnsafeFileError(f"the weights do not fit the model config ({cfg.layers}x{cfg.hidden_size} {cfg.cell}, "
                              f"vocabulary {cfg.vocab_size}): {what}")
