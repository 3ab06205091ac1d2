"""Sign-in throttling under real concurrency: gunicorn with two workers, sign-ins sent at once over HTTP, the
counts in a real Redis (``hosted_gunicorn.LIMITS_URL``).

The app trusts ``X-Forwarded-For`` from loopback (``RNNVIS_PROXY_HOPS=1``, as behind the compose file's
proxy), so that one test client can speak "from" many addresses.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from analytics.settings import Settings
from app.hosted import throttle
from app.hosted.auth import UserStore
from tests.app.hosted_gunicorn import LIMITS_URL, HostedGunicorn, free_port, sign_in

OWNERS = {f"owner{i}": f"xyzzy-pass-{i}-frob" for i in range(8)}
TARGET = ("tess", "plugh-quux-frob-1")


@pytest.fixture(scope="module")
def served(app_store, tmp_path_factory):
    users_file = tmp_path_factory.mktemp("flood") / "users.json"
    users = UserStore(users_file)
    for name, pw in [*OWNERS.items(), TARGET]:
        users.add(name, pw, "viewer", created_by="test")
    port = free_port()
    server = HostedGunicorn(app_store, users_file, f"127.0.0.1:{port}", workers=2, RNNVIS_PROXY_HOPS="1")
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_until_up(base)
        yield base
    finally:
        server.close()


def _at_once(n: int, fn) -> list:
    """``fn(i)`` for i < n, all released together by a barrier; the answers in order."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return fn(i)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_guesses_on_one_account_from_one_address_pass_only_the_limit(served):
    """Thirty guesses at once, wave after wave, until they are all refused: exactly the documented number of
    passwords was checked (401), and then the right password is refused too."""
    name, password = TARGET
    checked, waves = 0, 0
    while waves < 20:
        codes = [r.status_code for r in _at_once(30, lambda i: sign_in(served, name, f"guess-{waves}-{i}",
                                                                        "198.51.100.77"))]
        assert set(codes) <= {401, 429}, codes
        checked += codes.count(401)
        waves += 1
        if 401 not in codes:
            break
    assert checked == throttle.PAIR_MAX_FAILURES, f"{checked} password checks from one address in {waves} waves"
    r = sign_in(served, name, password, "198.51.100.77")
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text


def test_guessers_rotating_address_and_name_do_not_turn_real_sign_ins_away(served):
    """Six clients guess as fast as they can, each guess from a new address for a new name; meanwhile eight
    real users sign in at once from their own addresses: every one of them gets in (no 429 "busy")."""
    stop = threading.Event()
    guesses: list[int] = []

    def guess(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            guesses.append(sign_in(served, f"guess{k}x{i}", "not-the-password", f"10.{k}.{i // 250}.{i % 250 + 1}")
                           .status_code)
    guessers = [threading.Thread(target=guess, args=(k,), daemon=True) for k in range(6)]
    for t in guessers:
        t.start()
    try:
        deadline = time.monotonic() + 120
        while len(guesses) < 6:       # the flood is on
            assert time.monotonic() < deadline and all(t.is_alive() for t in guessers), "the guessers did not start"
            stop.wait(0.05)
        owners = list(OWNERS.items())
        answers = _at_once(len(owners), lambda i: sign_in(served, *owners[i], f"192.0.2.{i + 1}"))
    finally:
        stop.set()
        for t in guessers:
            t.join(120)
    assert [r.status_code for r in answers] == [303] * len(owners), [r.text[-300:] for r in answers
                                                                     if r.status_code != 303]
    assert set(guesses) <= {401, 429}


def test_ten_wrong_guesses_from_one_address_slow_the_account_elsewhere_not_lock_it(served):
    name, password = "owner0", OWNERS["owner0"]
    for i in range(throttle.PAIR_MAX_FAILURES):
        assert sign_in(served, name, f"wrong-{i}", "203.0.113.9").status_code == 401
    assert sign_in(served, name, password, "203.0.113.9").status_code == 429      # the guesser's address: locked
    r = sign_in(served, name, password, "192.0.2.200")
    if r.status_code == 429:                       # within a second of the last guess: the owner is slowed down,
        assert "slowed down" in r.text and r.headers["Retry-After"] == "1"
        threading.Event().wait(1.0)                # and waits as told (Retry-After), as a browser user would
        r = sign_in(served, name, password, "192.0.2.200")
    assert r.status_code == 303


def _attempt_at(settings: Settings, start_at: float) -> float:
    """In a process of its own (a gunicorn worker's place, or another host's): wait for ``start_at``, then one
    attempt on the shared Redis; its wait."""
    import flask
    gate = throttle.SignInThrottle(throttle.make_limiter(flask.Flask(__name__), settings), settings.ratelimit_prefix)
    while time.time() < start_at:   # every process starts together (a barrier across spawned processes)
        pass
    return gate.attempt("tess", "198.51.100.5").wait


def test_check_and_count_is_one_step_across_processes():
    """Thirty attempts by eight processes at the same instant, on one Redis: exactly the limit of them may go on."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    settings = Settings(ratelimit_url=LIMITS_URL, ratelimit_prefix=f"test-{uuid.uuid4().hex}")
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(abs, range(8)))                      # the processes are up
        start_at = time.time() + 1.0
        waits = list(pool.map(_attempt_at, [settings] * 30, [start_at] * 30))
    assert sum(w == 0 for w in waits) == throttle.PAIR_MAX_FAILURES, waits
    assert all(w > 60 for w in waits if w)
