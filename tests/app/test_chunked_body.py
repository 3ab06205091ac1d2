"""A chunked body (no Content-Length) cut at the member cap releases its memory (issue 20: a 145 MB cut left
+307 MB resident in a gunicorn worker): it is spooled to a temporary file 64 KB at a time, never buffered whole.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import requests

from analytics.settings import Settings
from app import ids
from app.hosted.security import member_max_body
from app.server import create_app
from tests.app.dispatching import request_body

ROOT = Path(__file__).resolve().parents[2]
CHUNKED = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}


class _Stream:
    """A request body produced on demand: ``head``, then ``n`` bytes of ``A`` (a base64 upload), then ``tail``."""

    def __init__(self, n: int, head: bytes = b'{"output": "x", "inputs": [{"value": "', tail: bytes = b'"}]}'):
        self.parts, self.left = [head], n
        self.tail = tail

    def read(self, size: int = -1) -> bytes:
        if self.parts:
            return self.parts.pop()
        if self.left > 0:
            n = min(self.left, size if size > 0 else 1 << 16)
            self.left -= n
            return b"A" * n
        out, self.tail = self.tail, b""
        return out


def _post_chunked(client, stream) -> tuple[object, int]:
    tracemalloc.start()
    try:
        r = client.post("/_dash-update-component", headers=CHUNKED,   # as gunicorn hands a chunked body over
                        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return r, peak


def test_a_chunked_body_over_the_cap_is_refused_without_buffering_it(app_store):
    client = create_app(Settings(store=app_store)).server.test_client()
    r, peak = _post_chunked(client, _Stream(member_max_body() + (8 << 20)))
    assert r.status_code == 413 and "limit" in r.json["error"]
    assert peak < 8 << 20                  # was the whole body, 145 MB, and more


def test_a_chunked_body_under_the_cap_reaches_its_callback(app_store):
    app = create_app(Settings(store=app_store))
    client = app.server.test_client()
    assert client.get("/sql").status_code == 200
    body = json.dumps(request_body(app, ids.SQL_TABLE, {ids.SQL_EDITOR: "SELECT model_id FROM models ORDER BY 1",
                                                        ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")).encode()
    r, _ = _post_chunked(client, _Stream(0, head=body, tail=b""))
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert [row["c0"] for row in r.json["response"][ids.SQL_TABLE]["rowData"]] == ["tiny-gru", "tiny-lstm"]


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) // 1024


def test_a_gunicorn_worker_keeps_no_memory_after_a_cut_chunked_upload(app_store, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen([gunicorn, "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}", "--timeout", "120",
                             "app.wsgi:server"], cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RNNVIS_STORE": str(app_store), "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:   # up when it answers
            assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not come up"
            try:
                if requests.get(base + "/sql", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        worker = int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()[0])
        before = _rss_mb(worker)

        def body():
            stream = _Stream(member_max_body() + (16 << 20))
            while piece := stream.read(1 << 20):
                yield piece
        r = requests.post(base + "/_dash-update-component", data=body(), headers=CHUNKED, timeout=120)
        assert r.status_code == 413
        assert _rss_mb(worker) - before < 64   # MB; it was +307 MB
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
