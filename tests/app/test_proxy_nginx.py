"""The compose layout with Debian's real nginx: deploy/nginx.conf in front of gunicorn on a unix socket.

nginx runs in the foreground on a free loopback port with a prefix of its own; the configuration is the
shipped file with only its listen address, its upstream socket and its temporary folders moved into the
test's folder. nginx is a test requirement (``make nginx`` installs Debian's package): without it this
module fails, it does not skip.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flask
import pytest
import requests

from app.hosted import throttle
from app.hosted.auth import UserStore
from tests.app.hosted_gunicorn import ROOT, HostedGunicorn, free_port, sign_in

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
VIEWER = ("vic", "plugh-frob-quux-2")
SLOW_CLIENTS = 40


def _nginx_conf(tmp: Path, port: int, sock: Path) -> Path:
    """deploy/nginx.conf, listening on ``127.0.0.1:port``, proxying to ``sock``, its temporary files in ``tmp``."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"    {kind}_temp_path {tmp / kind};\n" for kind in kinds)
    for old, new in (("listen 8080;", f"listen 127.0.0.1:{port};"),
                     ("server unix:/run/rnnvis/gunicorn.sock;", f"server unix:{sock};"),
                     ("http {\n", "http {\n" + temp)):
        assert old in text, f"deploy/nginx.conf no longer has {old!r}: update this test with it"
        text = text.replace(old, new, 1)
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.fixture(scope="module")
def proxied(app_store, tmp_path_factory):
    if NGINX is None:
        pytest.fail("nginx is not installed: the proxy tests need Debian's nginx (`make nginx`, or "
                    "`apt-get install nginx-light`)", pytrace=False)
    tmp = tmp_path_factory.mktemp("nginx")
    users_file = tmp / "users.json"
    UserStore(users_file).add(*VIEWER, "viewer", created_by="test")
    sock = tmp / "gunicorn.sock"
    app = HostedGunicorn(app_store, users_file, f"unix:{sock}", workers=1, RNNVIS_PROXY_HOPS="1")
    port = free_port()
    conf = _nginx_conf(tmp, port, sock)
    globals_ = f"daemon off; pid {tmp / 'nginx.pid'};" + (" user root;" if os.geteuid() == 0 else "")
    proxy = subprocess.Popen([NGINX, "-p", str(tmp), "-e", "stderr", "-c", str(conf), "-g", globals_],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        app.wait_until_up(base)
        assert proxy.poll() is None, proxy.stderr.read()
        yield base, port, app
    finally:
        proxy.terminate()
        proxy.wait(30)
        app.close()


def _slow_client(port: int, source: str, stop: threading.Event, cut: list[str], started: threading.Barrier) -> None:
    """A client that sends a request head one byte every half second, from its own loopback address."""
    head = b"GET /sql HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    with socket.socket() as s:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(head[:8])
        started.wait(30)                         # every slow client is connected and has begun its head
        s.settimeout(0.5)
        for byte in head[8:]:
            try:
                s.sendall(bytes([byte]))
                if s.recv(1024) == b"":          # the proxy hung up on it (or answered 408)
                    cut.append(source)
                    return
            except TimeoutError:
                pass
            except OSError:
                cut.append(source)
                return
            if stop.is_set():
                return


def test_slow_header_clients_do_not_starve_a_signed_in_user(proxied):
    base, port, _ = proxied
    http = requests.Session()
    assert sign_in(base, *VIEWER, http=http).status_code == 303
    stop, cut, started = threading.Event(), [], threading.Barrier(SLOW_CLIENTS + 1)
    clients = [threading.Thread(target=_slow_client, args=(port, f"127.0.1.{i + 1}", stop, cut, started), daemon=True)
               for i in range(SLOW_CLIENTS)]
    for t in clients:
        t.start()
    try:
        started.wait(30)     # all are connected and trickling (gunicorn alone: every thread of it is theirs)
        answers = [http.get(base + "/sql", timeout=10) for _ in range(8)]
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert [r.status_code for r in answers] == [200] * 8
    assert all('id="_dash-config"' in r.text for r in answers)     # the page itself, not a sign-in redirect


def test_the_app_counts_the_address_nginx_saw_not_the_one_a_client_forwards(proxied):
    base, _, app = proxied
    http = requests.Session()
    source = "127.0.2.9"
    http.get_adapter("http://").init_poolmanager(1, 1, source_address=(source, 0))
    r = sign_in(base, "nobody-here", "wrong-password-x", "203.0.113.66", http=http)   # a forged X-Forwarded-For
    assert r.status_code == 401
    counts = throttle.SignInThrottle(throttle.make_limiter(flask.Flask(__name__), app.settings),
                                     app.settings.ratelimit_prefix)   # the app's Redis
    assert counts.address_failures(source) == 1 and counts.address_failures("203.0.113.66") == 0


def test_nginx_caps_sign_in_posts_per_address(proxied):
    """Thirty sign-in posts at once from one address: nginx lets its burst through (10 over the rate) and
    answers the rest 429 itself; the app never sees them."""
    base, _, _ = proxied
    sessions = []
    for _ in range(30):
        http = requests.Session()
        http.get_adapter("http://").init_poolmanager(1, 1, source_address=("127.0.3.1", 0))
        token = re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/login", timeout=30).text).group(1)
        sessions.append((http, token))
    barrier = threading.Barrier(len(sessions))

    def post(i: int) -> requests.Response:
        http, token = sessions[i]
        barrier.wait()
        return http.post(base + "/login", allow_redirects=False, timeout=120,
                         data={"username": f"g{i}", "password": "wrong-password-x", "csrf": token})
    with ThreadPoolExecutor(len(sessions)) as pool:
        answers = list(pool.map(post, range(len(sessions))))
    by_nginx = [r for r in answers if r.status_code == 429 and "<center>nginx</center>" in r.text]
    assert len(answers) - len(by_nginx) <= 11 and len(by_nginx) >= 19, [r.status_code for r in answers]
