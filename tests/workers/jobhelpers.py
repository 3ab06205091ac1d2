"""Helpers of the job-system tests (imported by conftest.py and the test modules)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from workers.settings import JobSettings

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
REDIS_URL = "redis://127.0.0.1:6379/15"

#: A tiny model on the PTB fixture: trains in about a second once torch is warm.
TINY = {"preset": "demo-lstm", "hidden_size": 8, "layers": 1, "epochs": 2, "vocab_size": 500, "batch_size": 4,
        "bptt": 10}
TINY_ANALYSIS = {"states": "h,c", "gradient_k": 5, "top_words": 50, "min_count": 2, "k_max": 4, "max_tokens": 2000}


def wait_for(pred: Callable[[], object], timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def job_env(store: Path, broker_url: str | None, prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RNNVIS_STORE=str(store), RNNVIS_BROKER_PREFIX=prefix, RNNVIS_HEARTBEAT_S="1",
               RNNVIS_STALE_AFTER_S="4", RNNVIS_VISIBILITY_TIMEOUT="8", RNNVIS_BROKER_POLL_S="0.1",
               RNNVIS_DEVICE="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if broker_url:
        env["RNNVIS_BROKER_URL"] = broker_url
    else:
        env.pop("RNNVIS_BROKER_URL", None)
    env.update(extra)
    return env


def job_settings(prefix: str) -> JobSettings:
    return JobSettings(broker_prefix=prefix, visibility_timeout=8, heartbeat_s=1, stale_after_s=4, broker_poll_s=0.1)


class Worker:
    """One real `celery worker` process group (prefork, one pool process) for the job queues."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, queues: str = "train,analyze"):
        self.name, self.env, self.queues = name, env, queues
        self.log = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        from workers.embedded import worker_argv
        argv = worker_argv(queues=self.queues.split(","), hostname=f"{self.name}@%h", loglevel="info")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        self._ready_mark = self.log.stat().st_size
        return self

    def wait_ready(self, timeout: float = 90) -> Worker:
        def ready():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
            with open(self.log, "rb") as f:
                f.seek(self._ready_mark)
                return b" ready." in f.read()
        wait_for(ready, timeout, f"worker {self.name} to be ready")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_all(self) -> None:
        """SIGKILL the whole worker: main process and pool."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


