"""Password checks: bounded argon2 work, served in arrival order, a few at a time per client address.

Checking a password costs ~0.2-0.3 s of a core (argon2id).  Each web worker runs its checks on one thread of
its own at nice 10 (:class:`PasswordChecks`), in the order they arrive (a queue, not a race: a sign-in that
arrives during a flood of guesses waits its turn behind the guesses already queued, never an unlucky 3 s and
a "busy").  Each check holds one of the machine's :func:`argon2_slots` slots while it hashes (flock slots in
the store's private run directory, as the SQL console's), so a flood takes at most half the cores, and only
what the dashboard's own requests leave over.

Bounds, each answered 429 (:class:`Busy`, a message for the user) without hashing anything:

- :data:`PER_ADDRESS` checks queued or running per client address and worker: one address cannot fill the
  queue that other addresses' sign-ins wait in;
- :data:`MAX_QUEUED` checks queued per worker;
- a check at the head of the queue that finds no machine slot free within :data:`SLOT_WAIT_S` (other
  processes hold them all).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analytics.processes import process_alive
from analytics.sandbox.slots import run_dir, try_slot

__all__ = ["PER_ADDRESS", "MAX_QUEUED", "SLOT_WAIT_S", "Busy", "PasswordChecks", "argon2_slot", "argon2_slots"]

PER_ADDRESS = 2
MAX_QUEUED = 32
SLOT_WAIT_S = 10.0     # at the head of its worker's queue, a check waits this long for a machine slot


class Busy(Exception):
    """The check was not run; ``str(e)`` is a message for the user, ``retry_after`` seconds a hint."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def argon2_slots() -> int:
    """How many password checks may run at once on this machine: half the cores, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def _first_in_line(directory: Path, ticket: Path) -> bool:
    """No live process took a ticket before ``ticket`` (tickets are named by time, pid and thread)."""
    mine = ticket.name
    for other in directory.glob("argon2-wait-*"):
        if other.name < mine and process_alive(int(other.name.split("-")[3])):
            return False
    return True


@contextlib.contextmanager
def argon2_slot(store_root: str | os.PathLike[str], n: int | None = None,
                wait_s: float = SLOT_WAIT_S) -> Iterator[bool]:
    """Hold one of the machine's ``n`` password-check slots; yields False if none came free within ``wait_s``.

    Slots go in the order they were asked for, across processes: each asker holds a ticket (a file named by
    the time it asked) while it waits, and takes a free slot only when no live asker holds an older ticket.
    Without the order, a worker with a queue of guesses would take the slot again the moment it freed it,
    and another worker's sign-in, polling for it, could wait out ``wait_s`` behind a flood it is not part of.
    """
    directory: Path = run_dir(store_root)
    n = n or argon2_slots()
    deadline = time.monotonic() + wait_s
    ticket = directory / f"argon2-wait-{time.time_ns():020d}-{os.getpid()}-{threading.get_native_id()}"
    ticket.touch(mode=0o600)
    fd = None
    try:
        while True:
            if _first_in_line(directory, ticket):
                fd = try_slot(directory, "argon2", n)
            if fd is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.005)     # only each worker's one checking thread polls: at most one poller per process
    finally:
        ticket.unlink(missing_ok=True)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _lower_priority() -> None:
    # this thread only (Linux: a thread is a task with its own nice value)
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class PasswordChecks:
    """This process's password checks: one low-priority thread, first come first served (the executor's queue),
    at most ``per_address`` per client address and ``max_queued`` in all, each in a machine slot."""

    def __init__(self, store_root: str | os.PathLike[str], *, per_address: int = PER_ADDRESS,
                 max_queued: int = MAX_QUEUED, slot_wait_s: float = SLOT_WAIT_S):
        self.store_root, self.slot_wait_s = store_root, slot_wait_s
        self.per_address, self.max_queued = per_address, max_queued
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnvis-argon2", initializer=_lower_priority)
        self._lock = threading.Lock()
        self._by_address: Counter[str] = Counter()
        self._queued = 0

    def _in_slot(self, fn: Callable[..., Any], args: tuple) -> Any:
        with argon2_slot(self.store_root, wait_s=self.slot_wait_s) as free:
            if not free:
                raise Busy("The server is busy checking other sign-ins; try again in a few seconds.", 5)
            return fn(*args)

    def run(self, address: str | None, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the checking thread, in turn; :class:`Busy` if a bound refuses it."""
        key = address or ""       # no address (a unix socket, no proxy): every client would share one
        with self._lock:
            if key and self._by_address[key] >= self.per_address:
                raise Busy("Another sign-in from your address is being checked; try again in a moment.", 2)
            if self._queued >= self.max_queued:
                raise Busy("The server is busy checking other sign-ins; try again in a few seconds.", 5)
            self._by_address[key] += 1
            self._queued += 1
        try:
            return self._pool.submit(self._in_slot, fn, args).result()
        finally:
            with self._lock:
                self._queued -= 1
                self._by_address[key] -= 1
                if not self._by_address[key]:
                    del self._by_address[key]
