"""CPU thread policy for training and tracing.

Small recurrent models do many tiny matrix products one time step after the
other; with two OpenMP threads each step pays a barrier, and on a shared,
loaded machine the spinning threads make it 5-30x slower than one thread
(measured here: a 64-unit LSTM over 256 steps took 0.014 s on one thread and
0.39 s on two under load).  So models up to 128 units run on one thread;
larger ones keep torch's default unless the caller says otherwise.  The
command line also asks OpenMP to let waiting threads sleep
(``OMP_WAIT_POLICY=PASSIVE``, see ``app/cli.py``): with spinning waits a
2x650 trace at two threads measured 30x slower than at one under load, with
sleeping waits 1.4x.

Tracing a single sequence (batch 1, e.g. a user's sentence in the dashboard)
is a chain of matrix-*vector* products whatever the model's size: too little
work per step to split, so it runs on one thread too
(:func:`single_sequence_threads`; measured here: the 2x650 LSTM over a
31-token sentence took 16 ms on one thread and 80-900 ms on two under load).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SMALL_HIDDEN = 128

# torch's thread count is process-wide: callers that set and restore it from
# several threads at once (the dashboard's request threads) must not
# interleave, or one restores the other's setting.
_SINGLE_LOCK = threading.Lock()


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


@contextmanager
def single_sequence_threads() -> Iterator[int]:
    """Run a batch-1 trace on one intra-op thread (serialised with other such blocks in the process).

    Concurrent batch-1 traces wait for each other (each takes milliseconds);
    torch work in other threads meanwhile also runs on one thread, which is
    at most slower, never wrong.
    """
    with _SINGLE_LOCK:
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield 1
        finally:
            torch.set_num_threads(old)
