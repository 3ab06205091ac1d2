"""Sign-in throttling: attempts counted per (account, address), per address and per account, in one atomic step.

**Counting.** :meth:`SignInThrottle.attempt` checks the limits and, when they allow it, counts the attempt
as a failure *before* the password is checked, under one lock (check-and-count is one step): however
many attempts arrive at once, at most the limit of them reach a password check. A right password gives
its attempt back (:meth:`SignInThrottle.succeeded`), and so does an attempt that was never checked
(:meth:`SignInThrottle.not_checked`: the server was busy).

**Limits** (within :data:`WINDOW_S`, 15 minutes):

- :data:`PAIR_MAX_FAILURES` failures for one account from one address: that pair is refused (429 with
  ``Retry-After``) until the oldest of them is 15 minutes old;
- :data:`ADDRESS_MAX_FAILURES` failures from one address, for any names: that address is refused the same way;
- an account that failed :data:`ACCOUNT_FREE_FAILURES` times from all addresses together is *slowed down*,
  never locked: each further attempt waits ``2 ** (failures - ACCOUNT_FREE_FAILURES)`` seconds after the
  last failure (at most :data:`BACKOFF_MAX_S`), from every address. Guesses from many addresses then get
  at most one try per :data:`BACKOFF_MAX_S`, and the account's owner waits seconds, not 15 minutes.

Counts live behind the small :class:`SignInThrottle` interface; :class:`FileThrottle` keeps them in
``<users file>.throttle.json`` (a locked JSON file shared by every worker of the machine; at most
:data:`MAX_KEYS` keys, the stalest dropped first).

**Console queries.** A signed-in user may start :data:`CONSOLE_RATE` SQL console queries a second
(after a burst of :data:`CONSOLE_BURST`), per web worker (:class:`RateLimiter`); the access gate
answers the rest with a message before Dash dispatches them.  A refused query (the user's own
concurrency cap, :mod:`analytics.sandbox.slots`) is answered in milliseconds, but each still cost
a Dash dispatch: a client re-sending refused queries in a tight loop (~200 a second) took the
other users' p95 to 7.5x the quiet figure (``bench/bench_hostile.py``).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from analytics.json_file import JsonFile

__all__ = ["PAIR_MAX_FAILURES", "ADDRESS_MAX_FAILURES", "ACCOUNT_FREE_FAILURES", "BACKOFF_MAX_S", "WINDOW_S",
           "CONSOLE_RATE", "CONSOLE_BURST", "Verdict", "SignInThrottle", "FileThrottle", "RateLimiter"]

PAIR_MAX_FAILURES = 10
ADDRESS_MAX_FAILURES = 30
ACCOUNT_FREE_FAILURES = 10
BACKOFF_MAX_S = 30.0
WINDOW_S = 15 * 60.0
MAX_KEYS = 10_000
CONSOLE_RATE = 2.0
CONSOLE_BURST = 4
_ACCOUNT_KEEP = ACCOUNT_FREE_FAILURES + 8      # 2**8 s is past BACKOFF_MAX_S: older failures change nothing


@dataclass(frozen=True)
class Verdict:
    """The answer to one sign-in attempt.  ``wait`` > 0: refused for that many seconds (``reason``:
    ``"locked"`` for a pair or an address over its limit, ``"backoff"`` for an account slowed down).
    ``wait`` == 0: go on, the attempt is counted as a failure until :meth:`SignInThrottle.succeeded`."""
    wait: float
    reason: str
    account: str
    address: str | None
    stamp: float


class SignInThrottle(Protocol):
    """What the sign-in page needs of a throttle (so that the counts can move to another store)."""

    def attempt(self, account: str, address: str | None) -> Verdict: ...

    def succeeded(self, verdict: Verdict) -> None: ...

    def not_checked(self, verdict: Verdict) -> None: ...


def _keys(account: str, address: str | None) -> tuple[str, str | None, str | None]:
    """(account key, pair key, address key); no address (a unix socket without a proxy): account only."""
    account = account.lower()
    if not address:
        return f"u:{account}", None, None
    return f"u:{account}", f"p:{account}|{address}", f"a:{address}"


def _recent(data: dict[str, Any], key: str | None, since: float) -> list[float]:
    values = data.get(key, []) if key else []
    return [t for t in values if isinstance(t, (int, float)) and t > since] if isinstance(values, list) else []


def _refusal(data: dict[str, Any], account: str, address: str | None, now: float) -> tuple[float, str]:
    """(seconds to wait, reason) for an attempt now given the counts ``data``; (0, "") when it may go on."""
    u, p, a = _keys(account, address)
    since = now - WINDOW_S
    wait, reason = 0.0, ""
    for key, limit in ((p, PAIR_MAX_FAILURES), (a, ADDRESS_MAX_FAILURES)):
        times = _recent(data, key, since)
        if len(times) >= limit and times[-limit] + WINDOW_S - now > wait:
            wait, reason = times[-limit] + WINDOW_S - now, "locked"
    times = _recent(data, u, since)
    if len(times) >= ACCOUNT_FREE_FAILURES:
        delay = min(BACKOFF_MAX_S, 2.0 ** (len(times) - ACCOUNT_FREE_FAILURES))
        if times[-1] + delay - now > wait:
            wait, reason = times[-1] + delay - now, "backoff"
    return wait, reason


class FileThrottle:
    """:class:`SignInThrottle` in a locked JSON file: ``{"u:<account>" | "p:<account>|<address>" | "a:<address>":
    [failure times, oldest first]}``.  ``clock``: seconds since the epoch (a test moves it)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.file = JsonFile(path)
        self.clock = time.time

    def attempt(self, account: str, address: str | None) -> Verdict:
        now = self.clock()
        wait, reason = _refusal(self.file.read(), account, address, now)   # refused: answered without a write
        if wait > 0:
            return Verdict(wait, reason, account, address, 0.0)

        def check_and_count(data: dict[str, Any]) -> tuple[float, str]:
            found = _refusal(data, account, address, now)
            if found[0] <= 0:
                for key, keep in zip(_keys(account, address), (_ACCOUNT_KEEP, PAIR_MAX_FAILURES, ADDRESS_MAX_FAILURES)):
                    if key:
                        data[key] = (_recent(data, key, now - WINDOW_S) + [now])[-keep:]
                _prune(data, now)
            return found
        wait, reason = self.file.update(check_and_count)
        return Verdict(wait, reason, account, address, now if wait <= 0 else 0.0)

    def succeeded(self, verdict: Verdict) -> None:
        """The password was right: the account's and the pair's failures are forgotten, the attempt given back."""
        u, p, a = _keys(verdict.account, verdict.address)

        def fn(data: dict[str, Any]) -> None:
            data.pop(u, None)
            data.pop(p, None)
            _give_back(data, a, verdict.stamp)
        self.file.update(fn)

    def not_checked(self, verdict: Verdict) -> None:
        """The password was never checked (the server was busy): the attempt is given back."""
        def fn(data: dict[str, Any]) -> None:
            for key in _keys(verdict.account, verdict.address):
                _give_back(data, key, verdict.stamp)
        self.file.update(fn)


def _give_back(data: dict[str, Any], key: str | None, stamp: float) -> None:
    values = data.get(key) if key else None
    if isinstance(values, list) and stamp in values:
        values.remove(stamp)
        if not values:
            del data[key]


def _prune(data: dict[str, Any], now: float) -> None:
    """Drop keys whose newest failure left the window, then the stalest beyond :data:`MAX_KEYS`."""
    stale = [k for k, v in data.items() if not isinstance(v, list) or not v or not isinstance(v[-1], (int, float))
             or v[-1] <= now - WINDOW_S]
    for k in stale:
        del data[k]
    if len(data) > MAX_KEYS:
        for k in sorted(data, key=lambda k: data[k][-1])[: len(data) - MAX_KEYS]:
            del data[k]


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
