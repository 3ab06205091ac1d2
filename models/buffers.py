"""Reusable scratch buffers.

Tracing and the response statistics stream through buffers of tens to
hundreds of megabytes per chunk.  Fresh memory from the allocator arrives as
4 KiB pages, each faulted in on first touch; measured here, that costs about
0.65 ms per MB, as much as the arithmetic on the data.  So the big buffers are
allocated once per analysis and reused from chunk to chunk, their pages
faulted in by one ``MAP_POPULATE`` mapping (:func:`populated_empty`).
(Transparent huge pages through ``madvise`` were tried: their first touch
ranged from 5x cheaper to 6x dearer, when the kernel had to compact memory,
so they are not used.)
"""
from __future__ import annotations

import math
import mmap

import numpy as np
import torch

_NUMPY = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64}
#: populated_empty() maps buffers of at least this many bytes itself; smaller ones come from torch.empty.
POPULATE_BYTES = 1 << 20


def lazy_zeros(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A zero-filled CPU tensor whose pages take memory only once written.

    ``torch.zeros`` writes every byte; an anonymous mapping is zero-filled by
    the kernel on first touch, so a [V, W] table of which only the rows of
    words actually seen are written costs only those rows.
    """
    numel = math.prod(shape)
    if numel == 0 or dtype not in _NUMPY:
        return torch.zeros(shape, dtype=dtype)
    buf = mmap.mmap(-1, numel * torch.empty((), dtype=dtype).element_size())
    return torch.from_numpy(np.frombuffer(buf, dtype=_NUMPY[dtype]).reshape(shape))  # the tensor keeps buf alive


def populated_empty(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised CPU tensor whose pages the kernel faults in at once (``MAP_POPULATE``).

    For a buffer that is about to be written whole.  Faulting the pages in one
    call saves the trap of each page's first write: measured here 0.44 against
    0.55 ms per MB, and the statistics' loop, which writes the float16 sample,
    1.48 against 1.95 ns a value.  Small buffers, dtypes numpy lacks and systems
    without ``MAP_POPULATE`` get ``torch.empty``.
    """
    numel = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    flags = getattr(mmap, "MAP_POPULATE", 0)
    if numel * itemsize < POPULATE_BYTES or dtype not in _NUMPY or not flags:
        return torch.empty(shape, dtype=dtype)
    buf = mmap.mmap(-1, numel * itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
    return torch.from_numpy(np.frombuffer(buf, dtype=_NUMPY[dtype]).reshape(shape))  # the tensor keeps buf alive


class Workspace:
    """Named scratch buffers that are reused from call to call.

    ``get(name, shape)`` returns a tensor of that shape, carved from the
    buffer kept under ``name`` when it is large enough, else from a new one
    that replaces it.  Callers own the contents only until their next ``get``
    of the same name.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._bufs: dict[str, torch.Tensor] = {}
        self._children: dict[int, Workspace] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        numel = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.numel() < numel:
            buf = (populated_empty((numel,), dtype) if self.device.type == "cpu" else
                   torch.empty(numel, dtype=dtype, device=self.device))
            self._bufs[name] = buf
        return buf[:numel].view(shape)

    def child(self, key: int) -> Workspace:
        """A workspace of its own, kept under this one: the buffers of one thread of a split call."""
        if key not in self._children:
            self._children[key] = Workspace(self.device)
        return self._children[key]

    def clear(self) -> None:
        self._bufs.clear()
        self._children.clear()
