"""Hosted mode served by a real gunicorn (``app.wsgi:server``) for a test, on a free loopback port or a unix socket."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from analytics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
SECRET = "h" * 48
#: The Redis that the served apps' sign-in limits live in (a database no other test flushes); each server
#: gets a prefix of its own there, so that counts never leak between tests or runs.
LIMITS_URL = "redis://127.0.0.1:6379/12"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostedGunicorn:
    """``gunicorn -w WORKERS --threads 4 -b BIND app.wsgi:server`` in hosted mode, in a process group of its own
    (``kill()`` stops master and workers at once, as a host that dies); ``close()`` stops it. ``cwd``: its
    working directory (default: the repository). Its sign-in limits are in :data:`LIMITS_URL` under
    ``self.settings.ratelimit_prefix`` (``prefix``: hosts of one deployment share one; default a fresh one)."""

    def __init__(self, store: Path, users_file: Path, bind: str, *, workers: int = 2, cwd: Path | None = None,
                 prefix: str | None = None, **env: str):
        self.bind = bind
        self.settings = Settings(store=store, ratelimit_url=LIMITS_URL,
                                 ratelimit_prefix=prefix or f"test-{uuid.uuid4().hex}")
        self.proc = subprocess.Popen(
            [GUNICORN, "-w", str(workers), "--threads", "4", "-b", bind, "--timeout", "120", "app.wsgi:server"],
            cwd=cwd or ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "RNNVIS_STORE": str(store), "PYTHONPATH": str(ROOT), "RNNVIS_AUTH": "on",
                 "RNNVIS_SECRET_KEY": SECRET, "RNNVIS_USERS_FILE": str(users_file), "RNNVIS_COOKIE_SECURE": "off",
                 "RNNVIS_RATELIMIT_URL": LIMITS_URL, "RNNVIS_RATELIMIT_PREFIX": self.settings.ratelimit_prefix,
                 **env})

    def wait_until_up(self, base: str, timeout: float = 180) -> None:
        """Wait until ``base``/healthz answers 200 (or fail with gunicorn's own words if it exits)."""
        wait_for_health(base, self.proc, timeout, f"gunicorn did not come up on {self.bind}")

    def kill(self) -> None:
        """SIGKILL to the master and every worker (the host is gone)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def close(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def sign_in(base: str, name: str, password: str, address: str | None = None,
            http: requests.Session | None = None) -> requests.Response:
    """The sign-in form as a browser posts it (from ``address``: the X-Forwarded-For a local proxy would set)."""
    http = http or requests.Session()
    headers = {"X-Forwarded-For": address} if address else {}
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/login", headers=headers, timeout=60).text)
    return http.post(base + "/login", headers=headers, allow_redirects=False, timeout=120,
                     data={"username": name, "password": password, "csrf": token.group(1), "next": "/"})


def wait_for_health(base: str, proc: subprocess.Popen, timeout: float = 180,
                    failure: str = "gunicorn did not come up") -> None:
    """Wait until ``base``/healthz answers 200 (or fail with gunicorn's own words if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if requests.get(base + "/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)   # polling a server that is starting: there is no event to wait on
    raise AssertionError(failure)
