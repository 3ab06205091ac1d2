"""The figures of issue 20, items 1-4 and 7-8: each hostile request as the issue sent it, its time and the web
worker's memory growth.  Run by ``bench_hostile.py`` (``--figures-only`` for these alone).

One gunicorn worker (``-w 1 --threads 4``, hosted, ``RNNVIS_PROXY_HOPS=1`` so that sign-ins can come "from" many
addresses), as in the issue.  Around each request: the worker's resident memory before and after, and its peak
(``VmHWM``, reset to the current RSS before each request through ``/proc/PID/clear_refs``).  ``--scale`` shrinks
the sizes (rows, list lengths, string lengths, the span) for a small machine; ``--depth`` is the depth of the
uploaded metrics DAG (each level doubles what the Models page renders).  The issue's figures are at scale 1 and
depth 22, on main @ e293adc: do not run those on a small machine before the fixes, they take gigabytes.
"""
from __future__ import annotations

import contextlib
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_load as bl  # noqa: E402  (User, start_gunicorn, store_facts, ROOT)

__all__ = ["Figure", "run_figures", "print_figures"]

DEEP_MODEL = "bench-deep-metrics"


@dataclass
class Figure:
    item: str
    what: str
    seconds: float
    outcome: str
    rss_before: float
    rss_after: float
    peak: float


def status_mb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def worker_pids(master: int) -> list[int]:
    """Pids of the gunicorn master's worker processes."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                out.append(int(d.name))
    return sorted(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(item: str, what: str, pid: int, fn) -> Figure:
    """Time ``fn()`` (its return value: the outcome, in words) and the worker's memory around it."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")          # VmHWM := VmRSS
    before = status_mb(pid, "VmRSS")
    t0 = time.perf_counter()
    try:
        outcome = str(fn())
    except Exception as e:  # noqa: BLE001 - a bench reports what happened
        outcome = f"failed: {e!r}"[:200]
    seconds = time.perf_counter() - t0
    fig = Figure(item, what, seconds, outcome, before, status_mb(pid, "VmRSS"), status_mb(pid, "VmHWM"))
    print(f"  {item:3s} {what:44s} {seconds:7.2f} s  RSS {fig.rss_before:6.0f} -> {fig.rss_after:6.0f} MB, peak "
          f"{fig.peak:6.0f} MB  {outcome[:90]}", flush=True)
    return fig


def _answer(user: bl.User, fragment: str, values: dict, changed: str | None = None) -> str:
    """Send one callback as the browser does; its answer in words (size and the first message in it)."""
    t0 = time.perf_counter()
    data = user._callback("hostile", fragment, values, changed)
    if data is None:
        return f"no answer (HTTP error) after {time.perf_counter() - t0:.1f} s"
    text = str(data)
    said = re.search(r"'(?:text|children)': '([^']{12,160})'", text)     # a message in the answer, if any
    return f"{len(text) / 1e6:.1f} MB answer" + (f": {said.group(1)!r}" if said else "")


def _sql(user: bl.User, query: str) -> str:
    return _answer(user, "sql-table.columnDefs", {"sql-run.n_clicks": 1, "sql-editor.value": query})


def _csv(user: bl.User, query: str) -> str:
    _sql(user, query)
    return _answer(user, "sql-download.data", {"sql-csv.n_clicks": 1, "sql-last.data": query}, "sql-csv.n_clicks")


def sql_figures(user: bl.User, pid: int, scale: float) -> list[Figure]:
    rows = max(10, int(10_000 * scale))
    nulls = ", ".join(f"NULL AS c{i}" for i in range(1500))
    wide = f"SELECT {nulls} FROM range({rows})"
    lists = f"SELECT l AS a, l AS b FROM (SELECT list(NULL) AS l FROM range({max(10, int(30_000_000 * scale))}))"
    csv = f"SELECT {', '.join(f'NULL AS c{i}' for i in range(300))} FROM range({max(10, int(200_000 * scale))})"
    out = [measure("1", f"SQL 1,500 NULL columns x {rows:,} rows", pid, lambda: _sql(user, wide)),
           measure("1", "SQL two columns of one list of NULLs", pid, lambda: _sql(user, lists)),
           measure("1", "SQL CSV, 300 NULL columns", pid, lambda: _csv(user, csv))]

    def four():
        with ThreadPoolExecutor(4) as pool:
            return "; ".join(pool.map(lambda _: _sql(user, wide), range(4)))
    out.append(measure("1", "SQL 1,500 NULL columns, 4 at once", pid, four))
    return out


def pattern_figures(user: bl.User, pid: int, scale: float, store: Path) -> list[Figure]:
    from app.reader import Reader
    reader = Reader(store)
    model = key = None
    for m in sorted(user.facts):
        try:
            layer, state = reader.token_info(m).keys[0]
        except Exception:  # noqa: BLE001 - a model without token states
            continue
        model, key = m, f"{layer}:{state}"
        break
    if model is None:
        return []
    span = {"start": 0, "stop": max(64, int(10**9 * scale))}
    values = {"patterns-search.n_clicks": 1, "patterns-model.value": model, "patterns-key.value": key,
              "patterns-units.value": [0], "patterns-theta.value": 0.0, "patterns-span.data": span,
              "patterns-options.value": [], "patterns-min.value": None, "patterns-at.value": 0,
              "patterns-source.value": "corpus", "patterns-sentence.data": None}
    return [measure("2", f"patterns search, span 0..{span['stop']:,}", pid,
                    lambda: _answer(user, '"patterns-matches"', values))]


def string_figures(user: bl.User, pid: int, scale: float) -> list[Figure]:
    n = max(1000, int(900_000 * scale))
    model = sorted(user.facts)[0]
    explore = {**user._explore_values(), "explore-model.value": model, "explore-sentences.data": "x" * n}
    return [measure("3", f"models-curve-pick.value, {n:,} characters", pid,
                    lambda: _answer(user, '"models-curves"', {"models-curve-pick.value": "x" * n})),
            measure("3", f"explore-sentences.data, {n:,} characters", pid,
                    lambda: _answer(user, '"explore-cocluster"', explore, "explore-sentences.data"))]


def deep_checkpoint(store: Path, source: str, depth: int, folder: Path) -> Path:
    """A valid checkpoint of ``source`` whose ``metrics`` is a DAG of shared lists ``depth`` levels deep (a few KB
    on disk; 2**depth leaves once written out as JSON)."""
    from models.checkpoint import find_checkpoint, read_checkpoint, save_checkpoint
    ckpt = read_checkpoint(find_checkpoint(store, source))
    node: list = [1.0]
    for _ in range(depth):
        node = [node, node]
    ckpt["metrics"] = node
    return save_checkpoint(folder / "deep.pt", ckpt)


def upload_figures(user: bl.User, pid: int, store: Path, depth: int, corpus_spec: str | None) -> list[Figure]:
    """Item 4: a member's checkpoint with deep metrics imported and analysed (as the worker does), then ``/``."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.checkpoint import find_checkpoint, read_checkpoint
    from models.corpora import load_corpus
    from models.importer import import_model
    source = sorted(user.facts)[0]
    spec = corpus_spec or read_checkpoint(find_checkpoint(store, source)).get("corpus")
    corpus = load_corpus(spec)
    with tempfile.TemporaryDirectory(prefix="rnnvis-deep-") as tmp:
        import_model(DEEP_MODEL, deep_checkpoint(store, source, depth, Path(tmp)), None, store, corpus=corpus,
                     corpus_spec=spec, created_by="bench")
    analyze_model(DEEP_MODEL, store, AnalysisOptions(batch_size=8, top_words=30, min_count=2, k_max=5, gradient_k=5),
                  corpus=corpus, show_progress=False)

    def render():
        r = user.http.get(user.base + "/", timeout=120)
        return f"GET / {r.status_code}; " + _answer(user, "_pages_content.children",
                                                    {"_pages_location.pathname": "/", "_pages_location.search": ""})
    return [measure("4", f"render of / with a depth-{depth} metrics upload", pid, render)]


def delete_model(store: Path, model_id: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("rnnvis")), "--store", str(store), "delete", model_id],
                   check=False, capture_output=True)


def _sign_in(base: str, name: str, password: str, address: str) -> requests.Response:
    http = requests.Session()
    headers = {"X-Forwarded-For": address}
    page = http.get(base + "/login", headers=headers, timeout=60).text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return http.post(base + "/login", headers=headers, allow_redirects=False, timeout=120,
                     data={"username": name, "password": password, "csrf": token})


def sign_in_figures(base: str, pid: int, target: tuple[str, str], owners: list[tuple[str, str]]) -> list[Figure]:
    def race():
        checked, waves = 0, 0
        while waves < 20:
            with ThreadPoolExecutor(30) as pool:
                codes = list(pool.map(lambda i: _sign_in(base, target[0], f"guess-{waves}-{i}", "198.51.100.7")
                                      .status_code, range(30)))
            checked, waves = checked + codes.count(401), waves + 1
            if 401 not in codes:
                break
        right = _sign_in(base, *target, "198.51.100.7").status_code
        return f"{checked} password checks in {waves} waves of 30 (limit 10); the right password then: {right}"

    def flood():
        stop, codes = threading.Event(), Counter()

        def guess(k):
            i = 0
            while not stop.is_set():
                i += 1
                address = f"10.{k}.{i // 250}.{i % 250 + 1}"
                codes[_sign_in(base, f"guess{k}x{i}", "nope-nope-1", address).status_code] += 1
        guessers = [threading.Thread(target=guess, args=(k,), daemon=True) for k in range(6)]
        for t in guessers:
            t.start()
        time.sleep(2.0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(owners)) as pool:
            real = list(pool.map(lambda i: _sign_in(base, *owners[i], f"192.0.2.{i + 1}").status_code,
                                 range(len(owners))))
        took = time.perf_counter() - t0
        stop.set()
        for t in guessers:
            t.join(120)
        return f"8 real sign-ins: {dict(Counter(real))} in {took:.1f} s; guesses meanwhile {dict(codes)}"

    def together():
        with ThreadPoolExecutor(len(owners)) as pool:
            real = list(pool.map(lambda i: _sign_in(base, *owners[i], f"192.0.2.{i + 1}").status_code,
                                 range(len(owners))))
        return f"8 real sign-ins at once: {dict(Counter(real))}"

    def lockout():
        name, password = owners[0]
        wrong = Counter(_sign_in(base, name, f"wrong-{i}", "203.0.113.9").status_code for i in range(10))
        r = _sign_in(base, name, password, "192.0.2.200")
        return (f"10 guesses from one address {dict(wrong)}; the owner elsewhere: {r.status_code} "
                f"(Retry-After {r.headers.get('Retry-After', '-')})")
    return [measure("7", "30 concurrent sign-ins, one account+address", pid, race),
            measure("8", "8 real sign-ins at once, no flood", pid, together),
            measure("8", "6 guessers rotating address+name, 8 real", pid, flood),
            measure("8", "10 guesses from one address, owner elsewhere", pid, lockout)]


def run_figures(store: Path, env: dict, *, scale: float, depth: int, corpus_spec: str | None) -> list[Figure]:
    """Serve the store with one gunicorn worker and measure every figure (the deep-metrics model is removed after)."""
    from app.hosted.auth import UserStore
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-figures-"))
    users = UserStore(tmp / "users.json")
    viewer = ("vera", secrets.token_hex(8))
    target = ("tess", secrets.token_hex(8))
    owners = [(f"owner{i}", secrets.token_hex(8)) for i in range(8)]
    for name, pw in [viewer, target, *owners]:
        users.add(name, pw, "viewer", created_by="bench")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = bl.start_gunicorn(1, 4, port, {**env, "RNNVIS_USERS_FILE": str(tmp / "users.json")},
                               f"the issue's figures, store {store}")
    figures: list[Figure] = []
    try:
        pid = worker_pids(server.pid)[0]
        facts = bl.store_facts(store)
        user = bl.User(base, [], facts, bl.Stats(), random.Random(0))
        user.login(*viewer)
        user.deps = user.http.get(base + "/_dash-dependencies", timeout=60).json()
        user.deps.append({"output": ".._pages_content.children..._pages_store.data..",
                          "inputs": [{"id": "_pages_location", "property": "pathname"},
                                     {"id": "_pages_location", "property": "search"}], "state": []})
        figures += sql_figures(user, pid, scale)
        figures += pattern_figures(user, pid, scale, store)
        figures += string_figures(user, pid, scale)
        try:
            figures += upload_figures(user, pid, store, depth, corpus_spec)
        finally:
            delete_model(store, DEEP_MODEL)
        figures += sign_in_figures(base, pid, target, owners)
    finally:
        server.terminate()
        server.wait(30)
    return figures


def print_figures(figures: list[Figure], scale: float, depth: int) -> None:
    print(f"\nIssue 20 figures (scale {scale:g}, metrics depth {depth}; one gunicorn worker, 4 threads)")
    print(f"{'item':4s} {'request':44s} {'time s':>7s} {'RSS MB before->after':>21s} {'peak MB':>8s}  outcome")
    for f in figures:
        print(f"{f.item:4s} {f.what:44s} {f.seconds:7.2f} {f.rss_before:9.0f} -> {f.rss_after:7.0f} {f.peak:8.0f}  "
              f"{f.outcome}")
