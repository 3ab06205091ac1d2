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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

SMALL_HIDDEN = 128

# torch's thread count is process-wide: callers that set and restore it from
# several threads at once (the dashboard's request threads) must not
# interleave, or one restores the other's setting.
_SINGLE_LOCK = threading.Lock()
_SPLIT_LOCK = threading.Lock()
_T = TypeVar("_T")


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


def split_parts(limit: int) -> int:
    """Into how many threads :func:`run_split` should cut a CPU job: torch's thread count, at most ``limit``."""
    return max(1, min(torch.get_num_threads(), limit))


def run_split(fn: Callable[[int], _T], parts: int) -> list[_T]:
    """[fn(0), .., fn(parts − 1)], run side by side in Python threads, each on one intra-op thread.

    Why not torch's own threads: a trace step is a dozen small ops, and each
    parallel op is one OpenMP fork and barrier; with sleeping waits (see the
    module docstring) every barrier wakes a thread.  Measured here, a 2x650
    trace at two intra-op threads ran 0.77x the fused forward, cut into two
    halves of the batch, one thread each, 1.08-1.2x.  (Not so for the
    statistics' larger blocks: their column halves ran 2x slower this way
    than on torch's threads.)  Torch ops release the GIL, so the parts run
    side by side.  The parts must write disjoint memory.  torch's thread count is process-wide:
    while another split runs in this process (the two would restore each
    other's count), the parts run one after another in the caller's thread.
    """
    if parts <= 1 or not _SPLIT_LOCK.acquire(blocking=False):
        return [fn(i) for i in range(parts)]
    old = torch.get_num_threads()

    def run(i: int) -> _T:
        torch.set_num_threads(1)                 # this thread's intra-op pool: one thread
        return fn(i)

    try:
        torch.set_num_threads(1)
        with ThreadPoolExecutor(parts) as pool:
            return list(pool.map(run, range(parts)))
    finally:
        torch.set_num_threads(old)
        _SPLIT_LOCK.release()
