"""Load test: N simulated users against the gunicorn-served dashboard on loopback.

    .venv/bin/python bench/bench_load.py [--store /tmp/dashstore] [--users 20] [--duration 60] [--workers 4]
                                         [--threads 4] [--open] [--warmup 15] [--hosts 1]

Starts ``gunicorn -w WORKERS --threads THREADS app.wsgi:server`` on a free
loopback port over the store (default ``/tmp/dashstore``; built with
``rnnvis demo --no-serve`` if missing), in hosted mode (``RNNVIS_AUTH=on``,
one member account per simulated user in a temporary users file, so the store
is not touched) unless ``--open``. Each user signs in, then loops over typical
interactions with a think time of 0.5-1.5 s between them, sending the
requests a browser sends (callback bodies are built from the server's own
``/_dash-dependencies``, as the Dash renderer does):

- ``open explore``: GET the page, then the page-router callback for /explore;
- ``explore view``: the co-cluster view + glyphs + URL callbacks for a random model/layer/state/k;
- ``explore detail``: a word picked: the co-cluster view coloured by it + the box plots;
- ``models page``: GET / + the router + the training-curves callback;
- ``compare``: the router for /compare + the side-by-side co-cluster callback for two models;
- ``sql``: the SQL console runs a query (one of a few typical ones);
- ``healthz``.

``--hosts N`` starts N such servers on one store (each ``-w WORKERS``), as N web hosts behind a load
balancer, and spreads the users over them in turn; with ``RNNVIS_DATABASE_URL`` set they share
PostgreSQL as a team's hosts do (docs/deployment.md, "Many hosts, one team").

A warm-up (``--warmup`` s, not measured) lets every worker build its app and read
each model once. Reports p50/p95/max latency per request kind and overall, and
errors (non-200 answers, callbacks that answer an error, exceptions).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SQL_QUERIES = (
    "SELECT model_id, task, cell, layers, hidden_size, round(test_perplexity, 1) AS ppl FROM models ORDER BY 1",
    "SELECT unit, round(mean, 4) AS mean, n FROM word_responses WHERE model_id = '{model}' AND layer = 0 "
    "AND state = 'h' AND word = 'the' ORDER BY mean DESC LIMIT 10",
    "SELECT model_id, epoch, loss FROM training_metrics WHERE split = 'valid' ORDER BY model_id, epoch",
    "SELECT pos, count(*) AS words FROM vocab WHERE model_id = '{model}' GROUP BY ALL ORDER BY 2 DESC",
)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


def limits_env() -> dict[str, str]:
    """Hosted mode's sign-in limits for a served bench: in Redis (several gunicorn workers need it), under a
    prefix of this run's own (``RNNVIS_RATELIMIT_URL`` if set, else the local Redis)."""
    url = os.environ.get("RNNVIS_RATELIMIT_URL") or "redis://127.0.0.1:6379/12"
    return {"RNNVIS_RATELIMIT_URL": url, "RNNVIS_RATELIMIT_PREFIX": f"bench-{secrets.token_hex(8)}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_store(store: Path) -> None:
    if (store / "models").is_dir() and any((store / "models").iterdir()):
        return
    rnnvis = str(Path(sys.executable).with_name("rnnvis"))
    subprocess.run([rnnvis, "--store", str(store), "demo", "--no-serve"], check=True)


def store_facts(store: Path) -> dict:
    """Models with their layers, states, k values, frequent words and a few evaluated sentences."""
    from analytics import store as st
    facts = {}
    with st.connect(store) as con:
        models = st.query(con, "SELECT model_id, layers, states FROM models ORDER BY model_id")
        for m in models.itertuples():
            ks = st.query(con, "SELECT DISTINCT k FROM coclusters WHERE model_id = ? ORDER BY k", [m.model_id])
            words = st.query(con, "SELECT word FROM vocab WHERE model_id = ? AND freq > 20 ORDER BY freq DESC "
                                  "LIMIT 60 OFFSET 5", [m.model_id])
            if len(words) < 2:  # a tiny corpus: its most frequent words, whatever their counts
                words = st.query(con, "SELECT word FROM vocab WHERE model_id = ? ORDER BY freq DESC LIMIT 20",
                                 [m.model_id])
            sents = st.query(con, "SELECT sentence_id FROM sentences WHERE model_id = ? ORDER BY created_at "
                                  "LIMIT 3", [m.model_id])
            states = [s for s in str(m.states or "h").split(",") if s in ("h", "c")] or ["h"]
            facts[m.model_id] = {"layers": int(m.layers), "states": states,
                                 "ks": [int(k) for k in ks["k"] if 2 <= k <= 10] or [3],
                                 "words": words["word"].tolist() or ["the"],
                                 "sentences": sents["sentence_id"].tolist()}
    return facts


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []
        self.recording = False

    def add(self, name: str, seconds: float, ok: bool, why: str = "") -> None:
        if not self.recording:
            return
        with self.lock:
            self.times[name].append(seconds)
            if not ok:
                self.errors[name] += 1
                if len(self.samples) < 10:
                    self.samples.append(f"{name}: {why[:200]}")


class User:
    """One simulated browser: a requests session, the callback map of the server, and the current view."""

    def __init__(self, base: str, deps: list[dict], facts: dict, stats: Stats, rng: random.Random):
        self.base, self.facts, self.stats, self.rng = base, facts, stats, rng
        self.http = requests.Session()
        self.deps = deps
        self.model = rng.choice(sorted(facts))

    # -- plumbing
    def _get(self, name: str, path: str) -> None:
        t0 = time.perf_counter()
        try:
            r = self.http.get(self.base + path, timeout=30)
            ok = r.status_code == 200
            why = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            ok, why = False, repr(e)
        self.stats.add(name, time.perf_counter() - t0, ok, why)

    def _dep(self, fragment: str) -> dict:
        return next(d for d in self.deps if fragment in d["output"])

    def _callback(self, name: str, fragment: str, values: dict, changed: str | None = None) -> dict | None:
        dep = self._dep(fragment)
        out = dep["output"]
        def spec(part: str) -> dict:
            cid, prop = part.rsplit(".", 1)
            return {"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop.split("@")[0]}
        outputs = [spec(p) for p in out.strip(".").split("...")] if out.startswith("..") else spec(out)

        def item(spec):
            cid = spec["id"]
            key = f"{cid}.{spec['property']}"
            return {"id": json.loads(cid) if cid.startswith("{") else cid, "property": spec["property"],
                    "value": values.get(key)}
        body = {"output": out, "outputs": outputs, "inputs": [item(i) for i in dep["inputs"]],
                "state": [item(s) for s in dep.get("state", [])],
                "changedPropIds": [changed or f"{dep['inputs'][0]['id']}.{dep['inputs'][0]['property']}"]}
        t0 = time.perf_counter()
        try:
            r = self.http.post(self.base + "/_dash-update-component", json=body, timeout=30)
            data = r.json() if r.status_code == 200 else None
            ok = data is not None and "response" in data and "Something went wrong" not in r.text
            why = f"HTTP {r.status_code} {r.text[:120]}"
        except (requests.RequestException, ValueError) as e:
            ok, data, why = False, None, repr(e)
        self.stats.add(name, time.perf_counter() - t0, ok, why)
        return data

    def login(self, name: str, password: str) -> None:
        t0 = time.perf_counter()
        page = self.http.get(self.base + "/login", timeout=30)
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = self.http.post(self.base + "/login", data={"username": name, "password": password, "csrf": token},
                           allow_redirects=False, timeout=30)
        self.stats.add("login", time.perf_counter() - t0, r.status_code == 303, f"HTTP {r.status_code}")

    # -- interactions
    def _explore_values(self, words=()) -> dict:
        f = self.facts[self.model]
        layer = self.rng.randrange(f["layers"])
        return {"explore-model.value": self.model, "explore-layer.value": layer,
                "explore-state.value": self.rng.choice(f["states"]), "explore-k.value": self.rng.choice(f["ks"]),
                "explore-nwords.value": 20, "explore-stroke.value": 1.0, "explore-links.value": [0.1, 1.0],
                "explore-clip.value": -1.0, "explore-options.value": ["pos", "align"],
                "explore-words.value": list(words), "explore-selection.data": {},
                "explore-detail-mode.value": "word", "explore-sentences.data": f["sentences"][:2]}

    def open_page(self, path: str, search: str = "") -> None:
        self._get("GET page", path + search)
        self._callback("router callback", "_pages_content.children",
                       {"_pages_location.pathname": path, "_pages_location.search": search})

    def explore_view(self) -> None:
        self.model = self.rng.choice(sorted(self.facts))
        v = self._explore_values()
        self._callback("explore co-cluster view", '"explore-cocluster"', v, "explore-k.value")
        self._callback("explore glyphs", '"explore-glyphs"', v, "explore-k.value")
        self._callback("explore url", "explore-url.search", v, "explore-k.value")

    def explore_detail(self) -> None:
        words = self.rng.sample(self.facts[self.model]["words"], 2)
        v = self._explore_values(words)
        self._callback("explore co-cluster view", '"explore-cocluster"', v, "explore-words.value")
        self._callback("explore detail", '"explore-detail"', v, "explore-words.value")

    def models_page(self) -> None:
        self.open_page("/")
        self._callback("models curves", '"models-curves"', {"models-curve-pick.value": sorted(self.facts)})

    def compare(self) -> None:
        a, b = self.rng.sample(sorted(self.facts), 2)
        self.open_page("/compare", f"?model={a}&model_b={b}")
        fa, fb = self.facts[a], self.facts[b]
        self._callback("compare co-cluster views", '"compare-cluster-a"', {
            "compare-model-a.value": a, "compare-model-b.value": b, "compare-layer-a.value": 0,
            "compare-layer-b.value": 0, "compare-state.value": "h", "compare-k.value": min(fa["ks"][-1], fb["ks"][-1]),
            "compare-nwords.value": 20, "compare-word.value": None, "compare-pair.data": None})

    def sql(self) -> None:
        q = self.rng.choice(SQL_QUERIES).format(model=self.model)
        self._callback("sql query", "sql-table.columnDefs", {"sql-run.n_clicks": 1, "sql-editor.value": q})

    def run(self, stop: threading.Event, think: tuple[float, float]) -> None:
        self.open_page("/explore", f"?model={self.model}")
        actions = [(self.explore_view, 4), (self.explore_detail, 3), (self.sql, 2), (self.models_page, 1),
                   (self.compare, 1), (lambda: self._get("healthz", "/healthz"), 1),
                   (lambda: self.open_page("/explore", f"?model={self.model}"), 1)]
        fns, weights = zip(*actions)
        while not stop.is_set():
            self.rng.choices(fns, weights)[0]()
            stop.wait(self.rng.uniform(*think))


def start_gunicorn(workers: int, threads: int, port: int, env: dict, what: str) -> subprocess.Popen:
    """Serve ``app.wsgi:server`` with gunicorn on loopback and wait until /healthz answers (at most 180 s)."""
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-w", str(workers), "--threads", str(threads),
           "-b", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning", "app.wsgi:server"]
    print("serving:", " ".join(cmd), f"({what})", flush=True)
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 180
    while True:  # polling a starting server: there is nothing to wait on but its answer
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("gunicorn did not come up")
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, default=Path("/tmp/dashstore"))
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"))
    ap.add_argument("--open", action="store_true", help="open mode (no sign-in) instead of hosted mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hosts", type=int, default=1, help="web servers on the one store, users spread over them")
    args = ap.parse_args()

    ensure_store(args.store)
    facts = store_facts(args.store)
    bases = [f"http://127.0.0.1:{_free_port()}" for _ in range(args.hosts)]
    base = bases[0]
    tmp = Path(tempfile.mkdtemp(prefix="rnnvis-load-"))
    env = {**os.environ, "RNNVIS_STORE": str(args.store.absolute()), "RNNVIS_AUTH": "off" if args.open else "on",
           "RNNVIS_SECRET_KEY": secrets.token_hex(32), "RNNVIS_COOKIE_SECURE": "off",
           "RNNVIS_USERS_FILE": str(tmp / "users.json"), "PYTHONPATH": str(ROOT), **limits_env()}
    run = secrets.token_hex(3)  # fresh names: a shared PostgreSQL keeps the users of earlier runs
    accounts = [(f"user{run}-{i:02d}", secrets.token_hex(8)) for i in range(args.users)]
    if not args.open:
        from app.hosted.auth import UserStore
        users = UserStore(tmp / "users.json")
        for name, pw in accounts:
            users.add(name, pw, "member", created_by="bench")
    servers = []
    try:
        for b in bases:
            servers.append(start_gunicorn(args.workers, args.threads, int(b.rsplit(":", 1)[1]), env,
                                          f"{'open' if args.open else 'hosted'} mode, store {args.store}"))
        probe = requests.Session()
        if not args.open:
            page = probe.get(base + "/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            probe.post(base + "/login", data={"username": accounts[0][0], "password": accounts[0][1],
                                              "csrf": token})
        deps = probe.get(base + "/_dash-dependencies").json()
        # the router callback is hidden from the dependencies the page gets; it is in the app's callback map
        deps.append({"output": ".._pages_content.children..._pages_store.data..",
                     "inputs": [{"id": "_pages_location", "property": "pathname"},
                                {"id": "_pages_location", "property": "search"}], "state": []})
        stats = Stats()
        sims = [User(bases[i % len(bases)], deps, facts, stats, random.Random(args.seed + i))
                for i in range(args.users)]
        stats.recording = True
        for sim, (name, pw) in zip(sims, accounts):
            if not args.open:
                sim.login(name, pw)
        stats.recording = False
        stop = threading.Event()
        threads = [threading.Thread(target=s.run, args=(stop, tuple(args.think)), daemon=True) for s in sims]
        for t in threads:
            t.start()
        print(f"warm-up {args.warmup:.0f} s ...", flush=True)
        time.sleep(args.warmup)
        stats.recording = True
        t0 = time.monotonic()
        time.sleep(args.duration)
        stats.recording = False
        wall = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(35)
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    rows = []
    every = [x for name, xs in stats.times.items() if name != "login" for x in xs]  # sign-ins: before warm-up
    for name in sorted(stats.times, key=lambda n: -len(stats.times[n])):
        xs = stats.times[name]
        rows.append((name, len(xs), stats.errors.get(name, 0), _pct(xs, .5), _pct(xs, .95), max(xs)))
    n_err = sum(e for name, e in stats.errors.items() if name != "login")
    db = "PostgreSQL" if os.environ.get("RNNVIS_DATABASE_URL") else "SQLite in the store"
    print(f"\n{args.users} users, {wall:.0f} s measured after {args.warmup:.0f} s warm-up, {args.hosts} host(s) of "
          f"gunicorn -w {args.workers} --threads {args.threads}, {'open' if args.open else 'hosted'} mode, "
          f"metadata in {db}, {os.cpu_count()} CPUs")
    print(f"{'request':28s} {'n':>6s} {'errors':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
    for name, n, e, p50, p95, mx in rows:
        print(f"{name:28s} {n:6d} {e:6d} {p50 * 1e3:8.1f} {p95 * 1e3:8.1f} {mx * 1e3:8.1f}")
    print(f"{'ALL':28s} {len(every):6d} {n_err:6d} {_pct(every, .5) * 1e3:8.1f} {_pct(every, .95) * 1e3:8.1f} "
          f"{max(every) * 1e3:8.1f}")
    print(f"throughput {len(every) / wall:.1f} requests/s; mean {statistics.mean(every) * 1e3:.1f} ms")
    for s in stats.samples:
        print("error sample:", s)


if __name__ == "__main__":
    main()
