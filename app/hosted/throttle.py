"""Sign-in throttling: failed sign-ins counted per account and per client address, and bounded argon2 work.

**Failures.** After :data:`MAX_FAILURES` failed sign-ins within :data:`WINDOW_S` seconds for one
account name (from any address), or from one client address (for any names), further sign-ins for
that account or from that address are answered 429 (with ``Retry-After``) without checking the
password, until the oldest of those failures is :data:`WINDOW_S` old: at most 10 guesses per 15
minutes per account and per address. A successful sign-in clears its account's count. Counts live
in ``<users file>.throttle.json`` (shared by every worker; at most :data:`MAX_KEYS` names and
addresses, the stalest dropped first).

**Argon2 work.** Checking a password costs ~0.3 s of a core (argon2id); at most
:func:`argon2_slots` checks run at once on the machine (flock slots in the store's private run
directory, as the SQL console's), each on a thread of its own at nice 10 (:func:`password_checker`). A
sign-in that finds no slot free within three seconds is answered 429 too. So a flood of guesses from
many addresses takes at most half the cores, and only what the dashboard's own requests leave over.

**Console queries.** A signed-in user may start :data:`CONSOLE_RATE` SQL console queries a second
(after a burst of :data:`CONSOLE_BURST`), per web worker (:class:`RateLimiter`); the access gate
answers the rest with a message before Dash dispatches them.  A refused query (the user's own
concurrency cap, :mod:`analytics.sandbox.slots`) is answered in milliseconds, but each still cost
a Dash dispatch: a client re-sending refused queries in a tight loop (~200 a second) took the
other users' p95 to 7.5x the quiet figure (``bench/bench_hostile.py``).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analytics.json_file import JsonFile
from analytics.sandbox.slots import run_dir, try_slot

__all__ = ["MAX_FAILURES", "WINDOW_S", "CONSOLE_RATE", "CONSOLE_BURST", "LoginThrottle", "RateLimiter", "argon2_slot",
           "argon2_slots", "password_checker"]

MAX_FAILURES = 10
WINDOW_S = 15 * 60.0
MAX_KEYS = 10_000
SLOT_WAIT_S = 3.0
CONSOLE_RATE = 2.0
CONSOLE_BURST = 4


def argon2_slots() -> int:
    """How many password checks may run at once on this machine: half the cores, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


class RateLimiter:
    """A token bucket per key, in this process: :meth:`allow` is False once requests came faster than
    ``rate`` a second after a burst of ``burst``.  At most ``max_keys`` keys, the stalest dropped first.
    ``clock``: seconds, monotonic (a test stops it)."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = MAX_KEYS):
        self.rate, self.burst, self.max_keys = float(rate), float(burst), int(max_keys)
        self._buckets: dict[str, tuple[float, float]] = {}    # key -> (tokens, when), stalest first
        self._lock = threading.Lock()
        self.clock = time.monotonic

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, when = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            while len(self._buckets) > self.max_keys:
                del self._buckets[next(iter(self._buckets))]
            return ok


class LoginThrottle:
    """Failed sign-ins in ``path``: ``{"u:<name>" | "a:<address>": [failure times, newest last]}``."""

    def __init__(self, path: str | os.PathLike[str], *, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S):
        self.file = JsonFile(path)
        self.max_failures = int(max_failures)
        self.window_s = float(window_s)

    def _keys(self, account: str, address: str | None) -> list[str]:
        return [f"u:{account.lower()}"] + ([f"a:{address}"] if address else [])

    def retry_after(self, account: str, address: str | None) -> float:
        """Seconds until ``account`` may try to sign in from ``address`` (0: now)."""
        data, now = self.file.read(), time.time()
        wait = 0.0
        for key in self._keys(account, address):
            times = [t for t in data.get(key, []) if isinstance(t, (int, float)) and t > now - self.window_s]
            if len(times) >= self.max_failures:
                wait = max(wait, times[-self.max_failures] + self.window_s - now)
        return wait

    def failed(self, account: str, address: str | None) -> None:
        now = time.time()

        def fn(data: dict[str, Any]) -> None:
            for key in self._keys(account, address):
                times = [t for t in data.get(key, []) if isinstance(t, (int, float)) and t > now - self.window_s]
                data[key] = (times + [now])[-self.max_failures:]
            stale = [k for k, v in data.items() if not isinstance(v, list) or not v or v[-1] <= now - self.window_s]
            for k in stale:
                del data[k]
            if len(data) > MAX_KEYS:
                for k in sorted(data, key=lambda k: data[k][-1])[: len(data) - MAX_KEYS]:
                    del data[k]
        self.file.update(fn)

    def succeeded(self, account: str) -> None:
        key = self._keys(account, None)[0]
        if key in self.file.read():
            self.file.update(lambda data: data.pop(key, None))


def _lower_priority() -> None:
    # this thread only (Linux: a thread is a task with its own nice value)
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def password_checker() -> ThreadPoolExecutor:
    """One thread at nice 10 that runs this process's password checks (argon2 releases the GIL while it hashes).

    Requests wait for their check there, so a flood of guesses takes only the CPU that the dashboard's own
    requests leave over.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnvis-argon2", initializer=_lower_priority)


@contextlib.contextmanager
def argon2_slot(store_root: str | os.PathLike[str], n: int | None = None,
                wait_s: float = SLOT_WAIT_S) -> Iterator[bool]:
    """Hold one of the machine's ``n`` password-check slots; yields False if none came free within ``wait_s``."""
    directory: Path = run_dir(store_root)
    n = n or argon2_slots()
    deadline = time.monotonic() + wait_s
    fd = try_slot(directory, "argon2", n)
    while fd is None and time.monotonic() < deadline:
        time.sleep(0.02)
        fd = try_slot(directory, "argon2", n)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)
