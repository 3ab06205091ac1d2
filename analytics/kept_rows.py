"""The rows of the response statistics kept for the quantiles: float16 values, word ids, text positions.

Memory stays bounded: the rows are queued in memory (on the device first,
when there is one: a copy to the host per chunk, and the host's first touch of
fresh pages, ~0.65 ms per MB, would cost more than tracing the chunk) and
spilled to binary files in a private temporary directory once they exceed
``spill_bytes``: ids in one file, values in one file per column block of
``BLOCK_COLS``, read back with ``np.memmap``.  The directory is removed by
:meth:`KeptRows.close`, also when the owner is dropped unclosed.

Each row also carries its place in the text (-1: unknown); of rows at the
same place only the latest counts (see ``ResponseAccumulator.retract``).
The positions stay in memory (8 bytes a row, against 2 per value).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Columns per spill file (and the widest column block of the quantile pass).
#: Narrow files keep the reads of a large spilled buffer cheap when the sort
#: budget allows only a few columns at a time; 32-128 measured alike in memory.
BLOCK_COLS = 32
#: On a GPU, kept rows move to the host once they take this much device memory (else when read).
DEVICE_PENDING_BYTES = 8 << 30

_IDS_FILE = "word_ids.i64"


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class KeptRows:
    """The quantile sample of a [rows, width] stream, spilled to ``spill_dir`` past ``spill_bytes``."""

    def __init__(self, width: int, spill_bytes: int, spill_dir: str | None) -> None:
        self.width = width
        self.spill_bytes = spill_bytes
        self._spill_parent = spill_dir
        self._pending: list[tuple[np.ndarray, torch.Tensor]] = []  # (ids [r] i64, vals [r, W] f16)
        self._pending_bytes = 0
        self._device_pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._device_bytes = 0
        self._positions: list[np.ndarray] = []                       # [r] i64 per queued part, in order
        self.spill_path: str | None = None
        self._cleanup: weakref.finalize | None = None
        self.spilled_rows = 0
        self.n_spills = 0

    def add(self, ids: torch.Tensor, vals: torch.Tensor, positions: np.ndarray) -> None:
        """Queue rows: ids [k] int64, float16 values [k, W] (on any device), text positions [k] (-1 unknown)."""
        self._positions.append(positions)
        if vals.device.type != "cpu":
            self._device_pending.append((ids, vals))
            self._device_bytes += vals.numel() * 2
            if self._device_bytes > DEVICE_PENDING_BYTES:
                self.to_host()
            return
        ids = ids.numpy().copy()
        self._pending.append((ids, vals))
        self._pending_bytes += vals.numel() * 2 + ids.nbytes
        if self._pending_bytes > self.spill_bytes:
            self._spill()

    def to_host(self) -> None:
        """Move the rows held on the device to the host (spilling them if the buffer is full)."""
        for ids, vals in self._device_pending:
            ids, vals = ids.cpu().numpy(), vals.cpu()
            self._pending.append((ids, vals))
            self._pending_bytes += vals.numel() * 2 + ids.nbytes
        self._device_pending.clear()
        self._device_bytes = 0
        if self._pending_bytes > self.spill_bytes:
            self._spill()

    def _blocks(self) -> list[tuple[int, int]]:
        """Column blocks [(c0, c1)] of width BLOCK_COLS (the spill file layout)."""
        return [(c0, min(c0 + BLOCK_COLS, self.width)) for c0 in range(0, self.width, BLOCK_COLS)]

    def _spill(self) -> None:
        """Append the in-memory buffer to the spill files (one per column block)."""
        if not self._pending:
            return
        if self.spill_path is None:
            if self._spill_parent is not None:
                os.makedirs(self._spill_parent, exist_ok=True)
            self.spill_path = tempfile.mkdtemp(prefix="rnnvis-responses-", dir=self._spill_parent)
            # Remove the directory even if the buffer is dropped unclosed.
            self._cleanup = weakref.finalize(self, _remove_dir, self.spill_path)
        n_rows = 0
        with open(os.path.join(self.spill_path, _IDS_FILE), "ab") as f:
            for ids, _ in self._pending:
                ids.tofile(f)
                n_rows += ids.shape[0]
        # Column-block files make every block of the quantile pass one
        # contiguous read instead of a strided scan of a row-major file.
        for j, (c0, c1) in enumerate(self._blocks()):
            with open(os.path.join(self.spill_path, f"values_{j:04d}.f16"), "ab") as f:
                for _, vals in self._pending:
                    np.ascontiguousarray(vals[:, c0:c1].numpy()).tofile(f)
        self._pending.clear()
        self._pending_bytes = 0
        self.spilled_rows += n_rows
        self.n_spills += 1
        logger.debug("spilled %d rows (%d in total) to %s", n_rows, self.spilled_rows, self.spill_path)

    def _memmap(self, name: str, dtype: type, width: int | None) -> np.ndarray:
        """Read-only memmap of a spill file holding ``spilled_rows`` rows."""
        assert self.spill_path is not None
        path = os.path.join(self.spill_path, name)
        shape = (self.spilled_rows,) if width is None else (self.spilled_rows, width)
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        size = os.path.getsize(path)
        if size != expected:
            raise RuntimeError(
                f"spill file {path} has {size} bytes, expected {expected}; it was changed or "
                "truncated (disk full?) while the responses were accumulated"
            )
        return np.memmap(path, dtype=dtype, mode="r", shape=shape)

    def rows(self, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(ids [R] of every queued row, the rows that count, None: all): not those replaced by a later row at
        the same position, nor those of words outside ``word_ids`` (retracted to n = 0)."""
        self.to_host()
        parts: list[np.ndarray] = []
        if self.spill_path is not None:
            self._spill()  # flush the rest, so every block reads from one file
            parts.append(self._memmap(_IDS_FILE, np.int64, None))
        parts += [p[0] for p in self._pending]
        ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
        pos = np.concatenate(self._positions) if self._positions else np.empty(0, np.int64)
        if ids.shape[0] != pos.shape[0]:
            raise RuntimeError(f"quantile buffer holds {ids.shape[0]} rows, expected {pos.shape[0]}")
        known = np.flatnonzero(pos >= 0)
        _, last = np.unique(pos[known][::-1], return_index=True)            # the latest row at each position
        keep = np.union1d(np.flatnonzero(pos < 0), known[::-1][last])
        keep = keep[np.isin(ids[keep], word_ids)]
        return ids, None if len(keep) == len(ids) else keep

    def block(self, s0: int, s1: int) -> np.ndarray:
        """[R, s1 − s0] float16: columns s0 .. s1 (inside one BLOCK_COLS block) of every row, after rows()."""
        if self.spill_path is None:
            return torch.cat([p[1][:, s0:s1] for p in self._pending]).numpy()
        j, b0 = s0 // BLOCK_COLS, s0 - s0 % BLOCK_COLS
        spilled = self._memmap(f"values_{j:04d}.f16", np.float16, min(b0 + BLOCK_COLS, self.width) - b0)
        return np.asarray(spilled[:, s0 - b0:s1 - b0])

    def close(self) -> None:
        """Drop every row and remove the spill directory (idempotent)."""
        self._pending.clear()
        self._pending_bytes = 0
        self._device_pending.clear()
        self._device_bytes = 0
        self._positions.clear()
        if self._cleanup is not None:
            self._cleanup()  # removes the directory; runs at most once
        self.spill_path = None
