"""Sign-in throttling and the console's query rate, on Flask-Limiter's storage (Redis: shared by hosts and workers).

**Where the counts live.** :func:`make_limiter` builds the app's ``flask_limiter.Limiter`` (moving windows,
keys prefixed by ``RNNVIS_RATELIMIT_PREFIX``) on ``RNNVIS_RATELIMIT_URL``, else on the broker's Redis
(``RNNVIS_BROKER_URL``), else in this process's memory (one process: ``rnnvis serve``). Every web host and
worker that points at the same Redis shares the counts. :class:`SignInThrottle` and :class:`ConsoleRate`
use that limiter's rate-limit strategy (``limiter.limiter``: the `limits` library's atomic moving window).

**Counting sign-ins.** :meth:`SignInThrottle.attempt` runs on the password-checking thread, just before the
hash is checked: it refuses the attempt if a limit says so, and otherwise *hits* the (account, address)
window, one atomic step in Redis, so however many attempts arrive at once, at most the limit of them reach a
password check. (Flask-Limiter's ``deduct_when`` would count only after the response: concurrent guesses
would all pass its test first, the over-count this project measured before: 13-20 checks for a limit of 10.)
A wrong password then counts against the address and the account (:meth:`SignInThrottle.failed`); a right
one forgets the account's and the pair's failures (:meth:`SignInThrottle.succeeded`). An attempt turned away
as busy (:mod:`app.hosted.checks`) never reached :meth:`~SignInThrottle.attempt`, so it is never counted.

**Limits** (within :data:`WINDOW_S`, 15 minutes):

- :data:`PAIR_MAX_FAILURES` failures for one account from one address: that pair is refused (429 with
  ``Retry-After``) until the oldest of them is 15 minutes old;
- :data:`ADDRESS_MAX_FAILURES` failures from one address, for any names: that address is refused the same way;
- an account that failed :data:`ACCOUNT_FREE_FAILURES` times from all addresses together is *slowed down*,
  never locked: each further attempt waits ``2 ** (failures - ACCOUNT_FREE_FAILURES)`` seconds after the
  last failure (at most :data:`BACKOFF_MAX_S`), from every address: a one-entry window of that length, hit
  at each failure (Flask-Limiter has no back-off of its own; a fixed per-account limit would let anyone
  lock an account's owner out for 15 minutes with ten guesses).

**Redis down**: sign-in fails closed (:class:`LimitsUnavailable`: the page answers 503), see
``docs/security-hosted.md``; the console's rate, a load guard, lets queries through.

**Console queries.** A signed-in user may start :data:`CONSOLE_BURST` SQL console queries in any
``CONSOLE_BURST / CONSOLE_RATE`` seconds (:class:`ConsoleRate`); the access gate answers the rest with a
message before Dash dispatches them. A client re-sending refused queries in a tight loop (~200 a second)
took the other users' p95 to 7.5x the quiet figure (``bench/bench_hostile.py``).
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond

from app.hosted import security

if TYPE_CHECKING:
    import flask

    from analytics.settings import Settings

__all__ = ["PAIR_MAX_FAILURES", "ADDRESS_MAX_FAILURES", "ACCOUNT_FREE_FAILURES", "BACKOFF_MAX_S", "WINDOW_S",
           "CONSOLE_RATE", "CONSOLE_BURST", "LimitsUnavailable", "Verdict", "SignInThrottle", "ConsoleRate",
           "make_limiter", "storage_url"]

log = logging.getLogger(__name__)

PAIR_MAX_FAILURES = 10
ADDRESS_MAX_FAILURES = 30
ACCOUNT_FREE_FAILURES = 10
BACKOFF_MAX_S = 30
WINDOW_S = 15 * 60
CONSOLE_RATE = 2.0
CONSOLE_BURST = 4
_ACCOUNT_KEEP = ACCOUNT_FREE_FAILURES + 5      # 2**5 s is past BACKOFF_MAX_S: more failures change nothing

_PAIR = RateLimitItemPerMinute(PAIR_MAX_FAILURES, WINDOW_S // 60)
_ADDRESS = RateLimitItemPerMinute(ADDRESS_MAX_FAILURES, WINDOW_S // 60)
_ACCOUNT = RateLimitItemPerMinute(_ACCOUNT_KEEP, WINDOW_S // 60)
_BACKOFFS = {n: RateLimitItemPerSecond(1, min(BACKOFF_MAX_S, 2 ** (n - ACCOUNT_FREE_FAILURES)))
             for n in range(ACCOUNT_FREE_FAILURES, _ACCOUNT_KEEP + 1)}
_CONSOLE = RateLimitItemPerSecond(CONSOLE_BURST, round(CONSOLE_BURST / CONSOLE_RATE))


class LimitsUnavailable(Exception):
    """The rate-limit storage (Redis) cannot be reached: sign-in is refused until it can."""


@contextlib.contextmanager
def _storage() -> Iterator[None]:
    """Any error of the storage (redis.ConnectionError, TimeoutError, ...) as :class:`LimitsUnavailable`."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - the storage's errors depend on its kind
        raise LimitsUnavailable(f"{type(e).__name__}: {e}") from e


def storage_url(settings: Settings) -> str:
    """``RNNVIS_RATELIMIT_URL``, else the broker's Redis (``redis://``, ``rediss://``), else ``memory://`` (counts
    in this process only). A Redis on a unix socket is named explicitly: ``RNNVIS_RATELIMIT_URL=redis+unix://...``."""
    if settings.ratelimit_url:
        return settings.ratelimit_url
    broker = settings.broker_url or ""
    return broker if broker.startswith(("redis://", "rediss://")) else "memory://"


def make_limiter(server: flask.Flask, settings: Settings) -> Limiter:
    """The app's Flask-Limiter (no route limits of its own: the throttle and the console rate use its storage)."""
    url = storage_url(settings)
    if url == "memory://":
        if security.gunicorn_workers() > 1:   # each worker would count alone: N workers, N times the limits
            raise ValueError("hosted mode with several gunicorn workers needs Redis for the sign-in limits: set "
                             "RNNVIS_BROKER_URL=redis://... (or RNNVIS_RATELIMIT_URL), the same for every worker")
        log.warning("hosted mode: sign-in limits are counted in this web process only (no Redis); with several "
                    "processes or hosts set RNNVIS_BROKER_URL or RNNVIS_RATELIMIT_URL=redis://...")
    limiter = Limiter(get_remote_address, app=server, storage_uri=url, strategy="moving-window",
                      key_prefix=settings.ratelimit_prefix, headers_enabled=False, swallow_errors=False,
                      storage_options={"socket_connect_timeout": 2, "socket_timeout": 2} if url != "memory://" else {})
    return limiter


@dataclass(frozen=True)
class Verdict:
    """The answer to one sign-in attempt.  ``wait`` > 0: refused for that many seconds (``reason``:
    ``"locked"`` for a pair or an address over its limit, ``"backoff"`` for an account slowed down).
    ``wait`` == 0: go on and check the password, then report :meth:`SignInThrottle.failed` or
    :meth:`SignInThrottle.succeeded`."""
    wait: float
    reason: str
    account: str
    address: str | None


class SignInThrottle:
    """Failures per (account, address), per address and per account, in ``limiter``'s storage, under ``prefix``
    (``RNNVIS_RATELIMIT_PREFIX``: Flask-Limiter prefixes only the limits it applies itself)."""

    def __init__(self, limiter: Limiter, prefix: str):
        self.limiter, self.prefix = limiter, prefix

    def _wait(self, item: RateLimitItem, *key: str) -> float:
        """Seconds until ``item``'s window for ``key`` has room (0 if it has room now)."""
        strategy = self.limiter.limiter
        if strategy.test(item, self.prefix, *key):
            return 0.0
        return max(0.001, strategy.get_window_stats(item, self.prefix, *key).reset_time - time.time())

    def _count(self, item: RateLimitItem, *key: str) -> int:
        """How many hits ``item``'s window for ``key`` holds now."""
        return item.amount - self.limiter.limiter.get_window_stats(item, self.prefix, *key).remaining

    def _refusal(self, account: str, address: str | None) -> tuple[float, str]:
        """(seconds to wait, reason): the longest any limit asks for; (0, "") when none refuses."""
        found = [(0.0, "")]
        failures = self._count(_ACCOUNT, "u", account)
        if failures >= ACCOUNT_FREE_FAILURES:
            found.append((self._wait(_BACKOFFS[failures], "b", account), "backoff"))
        if address:
            found.append((self._wait(_PAIR, "p", account, address), "locked"))
            found.append((self._wait(_ADDRESS, "a", address), "locked"))
        return max(f for f in found if f[0] > 0 or not f[1])

    def attempt(self, account: str, address: str | None) -> Verdict:
        """Check the limits and, if they allow it, count the attempt against the pair in one atomic step.
        No address (a unix socket without a proxy): only the account's back-off applies (every client would
        share one address, and a per-address lock would lock everyone out)."""
        account = account.lower()
        with _storage():
            wait, reason = self._refusal(account, address)
            if wait <= 0 and address and not self.limiter.limiter.hit(_PAIR, self.prefix, "p", account, address):
                wait, reason = self._wait(_PAIR, "p", account, address), "locked"   # a concurrent attempt won
        return Verdict(wait, reason, account, address)

    def failed(self, verdict: Verdict) -> list[str]:
        """A wrong password: it counts against the address and the account (whose back-off starts at 10).
        Returns the limits this failure filled, from which on the burst is throttled (``"pair"``,
        ``"address"``, ``"account"``); usually none."""
        strategy, filled = self.limiter.limiter, []
        with _storage():
            if verdict.address:
                strategy.hit(_ADDRESS, self.prefix, "a", verdict.address)
                if self._count(_PAIR, "p", verdict.account, verdict.address) == PAIR_MAX_FAILURES:
                    filled.append("pair")
                if self._count(_ADDRESS, "a", verdict.address) == ADDRESS_MAX_FAILURES:
                    filled.append("address")
            strategy.hit(_ACCOUNT, self.prefix, "u", verdict.account)
            failures = self._count(_ACCOUNT, "u", verdict.account)
            if failures >= ACCOUNT_FREE_FAILURES:
                strategy.hit(_BACKOFFS[failures], self.prefix, "b", verdict.account)
            if failures == ACCOUNT_FREE_FAILURES:
                filled.append("account")
        return filled

    def succeeded(self, verdict: Verdict) -> None:
        """The password was right: the account's and the pair's failures are forgotten."""
        strategy = self.limiter.limiter
        with _storage():
            strategy.clear(_ACCOUNT, self.prefix, "u", verdict.account)
            for item in _BACKOFFS.values():
                strategy.clear(item, self.prefix, "b", verdict.account)
            if verdict.address:
                strategy.clear(_PAIR, self.prefix, "p", verdict.account, verdict.address)

    def address_failures(self, address: str) -> int:
        """How many failures ``address`` has in the window (for tests and the admin's eyes)."""
        return self._count(_ADDRESS, "a", address)


class ConsoleRate:
    """:data:`CONSOLE_BURST` console queries per user in any ``CONSOLE_BURST / CONSOLE_RATE`` seconds."""

    def __init__(self, limiter: Limiter, prefix: str):
        self.limiter, self.prefix = limiter, prefix

    def allow(self, user: str) -> bool:
        try:
            return self.limiter.limiter.hit(_CONSOLE, self.prefix, "c", user)
        except Exception:  # noqa: BLE001 - a load guard, not a defence: with Redis down, queries go on
            log.warning("console rate: the rate-limit storage is unreachable; letting the query through")
            return True
