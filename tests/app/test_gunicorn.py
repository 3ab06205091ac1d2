"""The production entry (``gunicorn app.wsgi:server``) as deployed: what it refuses before reading, where it binds.

Real gunicorn processes on free loopback ports, driven over raw sockets where the point is what the server
does *not* read (a body announced as 1 GB and never sent is answered 413 at once).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.hosted.auth import UserStore
from tests.app.hosted_gunicorn import wait_for_health

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
SECRET = "g" * 48
PASSWORDS = {"vic": "viewer-pass-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(store: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RNNVIS_STORE": str(store), "PYTHONPATH": str(ROOT), **extra}


def _up(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    wait_for_health(base, proc, timeout)


@pytest.fixture(scope="module")
def hosted_gunicorn(app_store, tmp_path_factory):
    users_file = tmp_path_factory.mktemp("gunicorn") / "users.json"
    for name, pw in PASSWORDS.items():
        UserStore(users_file).add(name, pw, "viewer")
    port = _free_port()
    proc = subprocess.Popen([GUNICORN, "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}", "--timeout", "120",
                             "app.wsgi:server"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env=_env(app_store, RNNVIS_AUTH="on", RNNVIS_SECRET_KEY=SECRET,
                                     RNNVIS_USERS_FILE=str(users_file), RNNVIS_COOKIE_SECURE="off"))
    base = f"http://127.0.0.1:{port}"
    try:
        _up(base, proc)
        yield base, port
    finally:
        proc.terminate()
        proc.wait(30)


def _raw(port: int, head: str) -> str:
    """Send a request head (and no body); the status line and headers of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("latin-1")


def _signed_in(base: str) -> requests.Session:
    s = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', s.get(base + "/login").text).group(1)
    r = s.post(base + "/login", data={"username": "vic", "password": PASSWORDS["vic"], "csrf": token},
               allow_redirects=False)
    assert r.status_code == 303
    return s


def test_huge_bodies_are_refused_before_they_are_read(hosted_gunicorn):
    base, port = hosted_gunicorn
    # anonymous: a 1 GB sign-in form, announced and never sent, is answered at once (nothing waits to read it)
    answer = _raw(port, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        "Content-Length: 1000000000\r\n\r\n")
    assert answer.startswith("HTTP/1.1 413")
    # a viewer: a 400 MB callback body, refused on the role before the body is parsed
    cookie = _signed_in(base).cookies.get("rnnvis_session")
    answer = _raw(port, f"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Cookie: rnnvis_session={cookie}\r\nContent-Length: 400000000\r\n\r\n")
    assert answer.startswith("HTTP/1.1 413")
    assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}   # the worker carries on


def test_headers_and_health_under_gunicorn(hosted_gunicorn):
    base, _ = hosted_gunicorn
    r = requests.get(base + "/healthz", timeout=10)
    assert r.json() == {"status": "ok"} and "Content-Security-Policy" in r.headers
    page = _signed_in(base).get(base + "/sql", timeout=10)
    assert page.status_code == 200 and "script-src 'self' 'sha256-" in page.headers["Content-Security-Policy"]


def test_open_mode_refuses_a_public_bind(app_store):
    port = _free_port()
    proc = subprocess.Popen([GUNICORN, "-w", "1", "-b", f"0.0.0.0:{port}", "app.wsgi:server"], cwd=ROOT,
                            env=_env(app_store, RNNVIS_AUTH="off"), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)   # the worker refuses to boot, so gunicorn stops
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("gunicorn went on serving open mode on 0.0.0.0")
    assert proc.returncode != 0
    assert "refusing to serve on 0.0.0.0" in err and "RNNVIS_AUTH=on" in err


def test_hosted_mode_with_several_workers_and_no_redis_refuses_to_start(app_store, tmp_path):
    """Each worker would count sign-in failures alone (N workers: N times the limits): gunicorn does not start."""
    users_file = tmp_path / "users.json"
    UserStore(users_file).add("vic", PASSWORDS["vic"], "viewer", created_by="test")
    env = {k: v for k, v in _env(app_store, RNNVIS_AUTH="on", RNNVIS_SECRET_KEY=SECRET,
                                 RNNVIS_USERS_FILE=str(users_file)).items()
           if k not in ("RNNVIS_BROKER_URL", "RNNVIS_RATELIMIT_URL")}
    proc = subprocess.Popen([GUNICORN, "-w", "2", "-b", f"127.0.0.1:{_free_port()}", "app.wsgi:server"], cwd=ROOT,
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("gunicorn served hosted mode with two workers counting sign-ins apart")
    assert proc.returncode != 0 and "needs Redis for the sign-in limits" in err


def test_open_mode_serves_on_loopback(app_store):
    port = _free_port()
    proc = subprocess.Popen([GUNICORN, "-w", "1", "-b", f"127.0.0.1:{port}", "app.wsgi:server"], cwd=ROOT,
                            env=_env(app_store, RNNVIS_AUTH="off"), stderr=subprocess.PIPE, text=True)
    try:
        _up(f"http://127.0.0.1:{port}", proc)
        assert requests.get(f"http://127.0.0.1:{port}/sql", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_open_mode_refuses_requests_that_arrive_on_a_public_address(app_store):
    """Behind a bind it could not see (a socket handed over by a supervisor), the request's own local address
    decides."""
    from analytics.settings import Settings
    from app.server import create_app

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))   # TEST-NET: nothing is sent; the kernel picks the local address
        local = probe.getsockname()[0]
    except OSError:
        pytest.skip("no non-loopback address on this machine")
    if local.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    client = create_app(Settings(store=app_store)).server.test_client()
    assert client.get("/healthz", environ_base={"gunicorn.socket": probe}).status_code == 403
    with socket.socket() as lo:
        lo.bind(("127.0.0.1", 0))
        assert client.get("/healthz", environ_base={"gunicorn.socket": lo}).status_code == 200
    probe.close()
