"""CPU thread policy for training and tracing.

Small recurrent models do many tiny matrix products one time step after the
other; with two OpenMP threads each step pays a barrier, and on a shared,
loaded machine the spinning threads make it 5-30x slower than one thread
(measured here: a 64-unit LSTM over 256 steps took 0.014 s on one thread and
0.39 s on two under load).  So models up to 128 units run on one thread;
larger ones keep torch's default unless the caller says otherwise.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

SMALL_HIDDEN = 128


@contextmanager
def torch_threads(hidden_size: int, threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (None: 1 for small models, else unchanged)."""
    old = torch.get_num_threads()
    n = threads or (1 if hidden_size <= SMALL_HIDDEN else old)
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)
