"""Hostile load on hosted mode: does anyone's flood reach the other users or the web workers?

    .venv/bin/python bench/bench_hostile.py [--store /tmp/dashstore] [--users 4] [--phase 30] [--workers 2]
    .venv/bin/python bench/bench_hostile.py --refusal-cost      # the app's CPU per rate-refused query
    .venv/bin/python bench/bench_hostile.py --figures-only [--scale 0.01 --depth 14]   # issue 20's figures alone

Starts ``gunicorn -w WORKERS --threads 4 app.wsgi:server`` in hosted mode on loopback over the store
(built with ``rnnvis demo --no-serve`` if missing; ``RNNVIS_PROXY_HOPS=1`` so that sign-in guesses can
come "from" many addresses), signs in ``--users`` members who browse as in ``bench_load.py`` (think
time 0.5-1.5 s), and measures their latency in phases of ``--phase`` seconds each:

1. **quiet**: the members alone;
2. **SQL flood**, once per ``--busy-pause`` value (default 0 and 1): one viewer runs 8 queries at once,
   over and over (a query refused as one too many is sent again at once, or that many seconds later),
   each built to exhaust a limit
   (``len(range(200000000))``, ``list_sort(range(150000000))``, an endless recursive CTE, a 3M-element
   ``list_distinct`` that DuckDB cannot interrupt, 200 MB of ``repeat``, a cross join); reports how
   each was answered and the longest answer against the time limit + 2 s;
3. **sign-in flood**: 6 clients guess passwords as fast as they can, each guess from a new address
   and for a new name (the worst case for the per-address and per-account throttle: only the
   machine-wide cap on argon2 work bounds it); reports guesses per minute and answers;
4. **big bodies**: an anonymous 1 GB sign-in form and a viewer's 400 MB callback body, announced by
   their Content-Length (each connection then sends 64 MB of it).

Then the peak resident memory (``VmHWM``) of each web worker. Prints a table per phase and a summary.
Last, the figures of issue 20 (items 1-4 and 7-8: NULL-column SQL, a huge pattern span, 900k-character
callback values, a deep-metrics upload and the render of ``/``, concurrent sign-ins, guessing floods), each
with its time and the worker's memory growth, on a server of its own (``hostile_figures.py``).
Each flood runs in a process of its own (its threads would otherwise take the GIL from the members'
simulated browsers in this one, and their latency would count the flooder's Python too); it shares
the machine's cores with the server and the members, as a worst case.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_load as bl  # noqa: E402  (User, Stats, store_facts, ...)
import hostile_figures  # noqa: E402

ROOT = bl.ROOT
HOSTILE = (
    "SELECT len(range(200000000)) AS n",
    "SELECT len(list_sort(range(150000000))) AS n",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    "SELECT len(list_distinct(range(3000000))) AS n",
    "SELECT repeat('x', 20000) AS s FROM range(10000)",
    "SELECT count(*) FROM word_responses a, word_responses b",
)
SQL_TIMEOUT_S = 10.0


def _classify(text: str) -> str:
    for key, label in (("Time limit", "time limit"), ("Memory limit", "memory limit"), ("Size limit", "size limit"),
                       ("already have", "busy (per user)"), ("Too many queries", "busy (server)"),
                       ("sending queries faster", "busy (rate)"),
                       ("Row limit", "row limit")):
        if key in text:
            return label
    return "other: " + text[:80]


def sql_flooder(base: str, deps, facts, name: str, password: str, stop, answers: Counter,
                durations: list[float], lock: threading.Lock, seed: int, busy_pause: float) -> None:
    user = bl.User(base, deps, facts, bl.Stats(), random.Random(seed))
    while not _sign_in(user.http, base, name, password):  # 8 sign-ins at once may find the password check busy
        stop.wait(1.0)
    rng = random.Random(seed)
    while not stop.is_set():
        q = rng.choice(HOSTILE)
        t0 = time.perf_counter()
        data = user._callback("hostile", "sql-table.columnDefs", {"sql-run.n_clicks": 1, "sql-editor.value": q})
        dt = time.perf_counter() - t0
        label = _classify(str(data)) if data else "HTTP error"
        with lock:
            answers[label] += 1
            if not label.startswith("busy"):
                durations.append(dt)
        if label.startswith("busy") and busy_pause:
            stop.wait(busy_pause)


def _flood_process(target, n_threads: int, args: tuple, stop, out) -> None:
    """``n_threads`` threads of ``target(*args, stop, answers, [durations,] lock, seed, ...)`` in a process of their
    own, until ``stop`` is set; then (answers, durations) go to ``out``.  A process, not threads of the bench's:
    a client that floods in a tight loop would otherwise hold the GIL that the members' simulated browsers need,
    and their measured latency would include waiting for the flooder's Python, not only for the server."""
    answers: Counter = Counter()
    durations: list[float] = []
    lock = threading.Lock()
    if target is sql_flooder:
        base, deps, facts, name, password, pause = args
        threads = [threading.Thread(target=sql_flooder, daemon=True, args=(
            base, deps, facts, name, password, stop, answers, durations, lock, 100 + i, pause))
            for i in range(n_threads)]
    else:
        (base,) = args
        threads = [threading.Thread(target=login_flooder, daemon=True, args=(base, stop, answers, lock, 200 + i))
                   for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((dict(answers), durations))


def _start_flood(target, n_threads: int, args: tuple):
    ctx = multiprocessing.get_context("spawn")             # the bench's own threads are running: no fork
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_flood_process, args=(target, n_threads, args, stop, out), daemon=True)
    proc.start()
    return proc, stop, out


def _end_flood(flood, timeout: float) -> tuple[dict, list[float]]:
    proc, stop, out = flood
    stop.set()
    result = out.get(timeout=timeout)
    proc.join(10)
    return result


def _sign_in(http: requests.Session, base: str, name: str, password: str) -> bool:
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/login", timeout=30).text).group(1)
    r = http.post(base + "/login", data={"username": name, "password": password, "csrf": token},
                  allow_redirects=False, timeout=30)
    return r.status_code == 303


def login_flooder(base: str, stop, answers: Counter, lock: threading.Lock, seed: int) -> None:
    rng = random.Random(seed)
    http = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', http.get(base + "/login", timeout=30).text).group(1)
    while not stop.is_set():
        addr = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        try:
            r = http.post(base + "/login", headers={"X-Forwarded-For": addr}, allow_redirects=False, timeout=30,
                          data={"username": f"guess{rng.randrange(10**9)}", "password": secrets.token_hex(6),
                                "csrf": token})
            label = str(r.status_code)
        except requests.RequestException:
            label = "error"
        with lock:
            answers[label] += 1


def big_body(port: int, head: str, send_mb: int = 64) -> str:
    """Announce a huge body, send ``send_mb`` MB of it (or until the server closes), return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head.encode())
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(send_mb):
                s.sendall(chunk)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                part = s.recv(4096)
                if not part:
                    break
                data += part
        except OSError:
            pass
    return data.decode("latin-1").split("\r\n", 1)[0]


def phase(title: str, stats: bl.Stats, seconds: float) -> dict:
    stats.times.clear()
    stats.errors.clear()
    stats.recording = True
    time.sleep(seconds)
    stats.recording = False
    every = [x for xs in stats.times.values() for x in xs]
    row = {"phase": title, "n": len(every), "errors": sum(stats.errors.values()),
           "p50": bl._pct(every, .5) * 1e3, "p95": bl._pct(every, .95) * 1e3, "max": max(every, default=0) * 1e3}
    print(f"{title:16s} n={row['n']:5d} errors={row['errors']:3d} p50={row['p50']:7.1f} ms p95={row['p95']:7.1f} ms "
          f"max={row['max']:7.1f} ms", flush=True)
    return row


def refusal_cost(store: Path, n: int = 2000) -> float:
    """CPU seconds the app spends on one console query that the access gate refuses for its rate (the
    Flask test client, in this process: the app's share of a tight-loop flood, without HTTP)."""
    from analytics.settings import Settings
    from app.hosted.auth import UserStore
    from app.server import create_app
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-refusal-"))
    UserStore(tmp / "users.json").add("vera", "viewer-pass-1", "viewer", created_by="bench")
    app = create_app(Settings(store=store, auth=True, secret_key=secrets.token_hex(32), users_file=tmp / "users.json",
                              cookie_secure=False))
    client = app.server.test_client()
    client.get("/healthz")                                              # registers the pages' callbacks
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "vera", "password": "viewer-pass-1", "csrf": token})
    key = next(k for k in app.callback_map if "sql-table.columnDefs" in k)
    cb = app.callback_map[key]
    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1))) for o in key.strip(".").split("...")]
    body = {"output": key, "outputs": outputs,
            "inputs": [{**i, "value": 1 if i["property"] == "n_clicks" else None} for i in cb["inputs"]],
            "state": [{**s, "value": "SELECT 42" if s["id"] == "sql-editor" else None} for s in cb["state"]],
            "changedPropIds": ["sql-run.n_clicks"]}
    import types

    import limits.storage.memory
    frozen = time.time()                # the app's limits are in this process: stop their clock, so that past
    limits.storage.memory.time = types.SimpleNamespace(time=lambda: frozen)   # the burst every query is refused
    for _ in range(10):
        last = client.post("/_dash-update-component", json=body)
    assert "faster than" in last.get_data(as_text=True), last.get_data(as_text=True)[:200]
    t0 = time.process_time()
    for _ in range(n):
        client.post("/_dash-update-component", json=body)
    return (time.process_time() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path("/tmp/dashstore"))
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--phase", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--busy-pause", type=float, nargs="+", default=[0.0, 1.0],
                    help="one SQL-flood phase per value: seconds the flooder waits after a 'too many queries' answer "
                         "(0: re-sends at once)")
    ap.add_argument("--refusal-cost", action="store_true",
                    help="only measure the CPU the app spends on one rate-refused console query, and exit")
    ap.add_argument("--figures-only", action="store_true", help="only issue 20's figures (items 1-4, 7-8)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="issue 20's figures: sizes times this (1: the issue's requests; 0.01 for a small machine)")
    ap.add_argument("--depth", type=int, default=22, help="issue 20's figures: depth of the uploaded metrics DAG")
    ap.add_argument("--deep-corpus", default=None,
                    help="corpus to import the deep-metrics upload on (default: the first model's corpus name)")
    args = ap.parse_args()
    if args.refusal_cost:
        bl.ensure_store(args.store)
        print(f"a console query refused for its rate costs the app {refusal_cost(args.store) * 1e3:.2f} ms of CPU "
              "(Flask test client, no HTTP)")
        return

    bl.ensure_store(args.store)
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-hostile-"))
    env = {**os.environ, "RNNVIS_STORE": str(args.store.absolute()), "RNNVIS_AUTH": "on",
           "RNNVIS_SECRET_KEY": secrets.token_hex(32), "RNNVIS_COOKIE_SECURE": "off", "RNNVIS_PROXY_HOPS": "1",
           "RNNVIS_USERS_FILE": str(tmp / "users.json"), "PYTHONPATH": str(ROOT), **bl.limits_env()}
    if not args.figures_only:
        phases(args, env, tmp)
    figures = hostile_figures.run_figures(args.store.absolute(), env, scale=args.scale, depth=args.depth,
                                          corpus_spec=args.deep_corpus)
    hostile_figures.print_figures(figures, args.scale, args.depth)


def big_bodies(base: str, port: int, viewer_user: tuple[str, str]) -> list[tuple[str, str]]:
    """An anonymous 1 GB sign-in form and a viewer's 400 MB callback body: how each was answered."""
    viewer = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', viewer.get(base + "/login").text).group(1)
    viewer.post(base + "/login", data={"username": viewer_user[0], "password": viewer_user[1], "csrf": token},
                allow_redirects=False)
    cookie = viewer.cookies.get("rnnvis_session")
    return [("anonymous 1 GB sign-in form",
             big_body(port, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            "application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n")),
            ("viewer 400 MB callback body", big_body(port, "POST /_dash-update-component HTTP/1.1\r\nHost: x\r\n"
                                             f"Content-Type: application/json\r\nCookie: rnnvis_session={cookie}\r\n"
                                             "Content-Length: 400000000\r\n\r\n"))]


def print_phases(args: argparse.Namespace, rows: list[dict], report: dict) -> None:
    quiet = rows[0]
    print(f"\n{args.users} members browsing; gunicorn -w {args.workers} --threads {args.threads}; "
          f"{args.phase:.0f} s per phase; {os.cpu_count()} CPUs")
    print(f"{'phase':18s} {'n':>5s} {'err':>4s} {'p50 ms':>8s} {'p95 ms':>8s} {'p95/quiet':>9s}")
    for r in rows:
        print(f"{r['phase']:18s} {r['n']:5d} {r['errors']:4d} {r['p50']:8.1f} {r['p95']:8.1f} "
              f"{r['p95'] / quiet['p95']:9.2f}")
    for pause, answers, longest in report["sql"]:
        print(f"SQL flood re-sending {pause:g} s after a refusal: answers {answers}; longest answer {longest:.1f} s "
              f"(limit {SQL_TIMEOUT_S:g} s + 2 s)")
    answers, per_min = report["login"]
    print(f"sign-in flood answers: {answers}; {per_min:.0f} guesses/min")
    for what, status in report["bodies"]:
        print(f"{what}: {status}")
    for pid, (rss0, rss1, hwm) in report["rss"].items():
        print(f"web worker {pid}: RSS {rss0:.0f} -> {rss1:.0f} MB around the big bodies; peak (VmHWM) {hwm:.0f} MB")


def phases(args: argparse.Namespace, env: dict, tmp: Path) -> None:
    """The four phases: quiet, SQL floods, sign-in flood, big bodies; a table of the members' latency."""
    facts = bl.store_facts(args.store)
    port = bl._free_port()
    base = f"http://127.0.0.1:{port}"
    from app.hosted.auth import UserStore
    users = UserStore(tmp / "users.json")
    members = [(f"member{i:02d}", secrets.token_hex(8)) for i in range(args.users)]
    for name, pw in members:
        users.add(name, pw, "member", created_by="bench")
    flood_user = ("flooder", secrets.token_hex(8))
    users.add(*flood_user, "viewer", created_by="bench")
    server = bl.start_gunicorn(args.workers, args.threads, port, env,
                               f"hosted, store {args.store}, {os.cpu_count()} CPUs")
    rows, report = [], {}
    try:
        probe = bl.User(base, [], facts, bl.Stats(), random.Random(0))
        assert _sign_in(probe.http, base, *members[0])
        deps = probe.http.get(base + "/_dash-dependencies", timeout=30).json()
        deps.append({"output": ".._pages_content.children..._pages_store.data..",
                     "inputs": [{"id": "_pages_location", "property": "pathname"},
                                {"id": "_pages_location", "property": "search"}], "state": []})
        stats = bl.Stats()
        sims = [bl.User(base, deps, facts, stats, random.Random(i)) for i in range(args.users)]
        for sim, (name, pw) in zip(sims, members):
            while not _sign_in(sim.http, base, name, pw):
                time.sleep(1.0)
        stop = threading.Event()
        for s in sims:
            threading.Thread(target=s.run, args=(stop, (0.5, 1.5)), daemon=True).start()
        time.sleep(args.warmup)
        rows.append(phase("quiet", stats, args.phase))

        report["sql"] = []
        for pause in args.busy_pause:
            flood = _start_flood(sql_flooder, 8, (base, deps, facts, *flood_user, pause))
            rows.append(phase(f"SQL flood, {pause:g} s", stats, args.phase))
            sql_answers, durations = _end_flood(flood, SQL_TIMEOUT_S + 30)
            report["sql"].append((pause, sql_answers, max(durations, default=0.0)))

        t0 = time.monotonic()
        flood = _start_flood(login_flooder, 6, (base,))
        rows.append(phase("sign-in flood (6)", stats, args.phase))
        login_answers, _ = _end_flood(flood, 60)
        report["login"] = (login_answers, sum(login_answers.values()) / ((time.monotonic() - t0) / 60))

        before = {pid: hostile_figures.status_mb(pid, "VmRSS") for pid in hostile_figures.worker_pids(server.pid)}
        report["bodies"] = big_bodies(base, port, flood_user)
        rows.append(phase("after", stats, min(args.phase, 10)))
        after = {pid: hostile_figures.status_mb(pid, "VmRSS") for pid in hostile_figures.worker_pids(server.pid)}
        report["rss"] = {pid: (before.get(pid, float("nan")), after[pid], hostile_figures.status_mb(pid, "VmHWM"))
                         for pid in after}
        stop.set()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    print_phases(args, rows, report)

if __name__ == "__main__":
    main()
