"""The machine's password-check slots go in the order they were asked for, across processes."""
from __future__ import annotations

import multiprocessing as mp
import time

from app.hosted.checks import argon2_slot


def _flood(root: str, started, stop) -> None:
    """A worker with an endless queue of guesses: it asks for the slot again the moment it frees it."""
    while not stop.is_set():
        with argon2_slot(root, n=1, wait_s=30) as free:
            assert free
            started.set()
            time.sleep(0.05)          # the argon2 work of one guess


def test_a_worker_busy_with_guesses_cannot_keep_the_slot_from_another(tmp_path):
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    flood = ctx.Process(target=_flood, args=(str(tmp_path), started, stop), daemon=True)
    flood.start()
    try:
        assert started.wait(60), "the flooding process did not start"
        got = []
        for _ in range(5):            # without the order, the flood re-takes the slot first nearly every time
            with argon2_slot(tmp_path, n=1, wait_s=2.0) as free:
                got.append(free)
        assert got == [True] * 5
    finally:
        stop.set()
        flood.join(30)
    assert flood.exitcode == 0
