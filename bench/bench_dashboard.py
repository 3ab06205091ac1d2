"""Benchmark the dashboard's server time per interaction, and Explore's first render in a browser.

    .venv/bin/python bench/bench_dashboard.py --store /tmp/dashstore [--reps 20] [--first-render]
    .venv/bin/python bench/bench_dashboard.py --store /tmp/bigstore --models big-lstm

Replays five interactions against the callback functions (``app.logic``, the
code the Dash callbacks call) with the app's reader, inside the Flask app
context, and JSON-encodes every output the way Dash does (``dash._utils.to_json``):

- ``change k``: the co-cluster view, the glyphs and the URL for a new k;
- ``layer/state``: a new layer or state (co-cluster view, detail view, glyphs, URL);
- ``select word``: a click on a word (click handler, co-cluster view coloured by it, box plots, URL);
- ``add sentence``: evaluate and store a 30-token sentence, then draw the glyphs;
- ``switch model``: controls, co-cluster view, detail view, glyphs and URL for another model.

Each interaction runs ``--reps`` times with varying arguments (k cycles over
2..20, layers and states over the model's, words over its co-clustered words).
``cold`` is the first time a (model, layer, state) is read; p50/p95 are over the
repetitions after one warm-up round (what a user sees once a view was opened).

The 2x650 LSTM with a 10k vocabulary (``--make-big STORE``; the same as)::

    rnnvis --store STORE train --preset demo-lstm --model-id big-lstm --layers 2 --hidden-size 650 \\
        --embed-size 650 --vocab-size 10000 --epochs 1 --max-train-tokens 20000 --no-analyze
    rnnvis --store STORE analyze big-lstm --states h,c --max-tokens 100000 --gradient-k 10
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SENTENCE = ("the old man said that he would not go to the city because the weather was bad and his "
            "wife was ill so they stayed home")   # 30 tokens with the trailing word added per rep


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[i]


def make_big(store: Path) -> None:
    rnnvis = str(Path(sys.executable).with_name("rnnvis"))
    subprocess.run([rnnvis, "--store", str(store), "train", "--preset", "demo-lstm", "--model-id", "big-lstm",
                    "--layers", "2", "--hidden-size", "650", "--embed-size", "650", "--vocab-size", "10000",
                    "--epochs", "1", "--max-train-tokens", "20000", "--no-analyze"], check=True)
    subprocess.run([rnnvis, "--store", str(store), "analyze", "big-lstm", "--states", "h,c", "--max-tokens",
                    "100000", "--gradient-k", "10"], check=True)


def bench(store: Path, models: list[str] | None, reps: int) -> dict[str, dict[str, float]]:
    from dash._utils import to_json

    from analytics.settings import Settings
    from app import context
    from app.logic import explore as ex
    from app.server import create_app

    app = create_app(Settings(store=store))
    results: dict[str, list[float]] = {}
    cold: dict[str, list[float]] = {}
    with app.server.app_context():
        reader = app.server.config[context.READER_KEY]
        ids = models or reader.model_ids()
        if not ids:
            raise SystemExit(f"no models in {store}")

        def timed(name: str, fn: Callable[[], list], is_cold: bool = False) -> None:
            t0 = time.perf_counter()
            outs = fn()
            for o in outs:
                to_json(o)
            dt = (time.perf_counter() - t0) * 1000
            (cold if is_cold else results).setdefault(name, []).append(dt)

        def view(m, layer, state, k, words=(), sentences=()):
            return [*ex.cluster_view(reader, m, layer, state, k, 20, 1.0, (0.1, 1.0), -1, ["pos", "align"],
                                     list(words), {}),
                    *ex.glyph_view(reader, m, layer, state, k, list(sentences)),
                    ex.url_search(m, layer, state, k, 20, list(words), list(sentences), {})]

        for m in ids:
            ls = reader.layer_states(m)
            pairs = [(layer, s) for layer in ls for s in ls[layer] if s in ("h", "c")] or [(0, "h")]
            # cold: the first read of every (layer, state) of the model
            for layer, s in pairs:
                timed("layer/state", lambda: [*view(m, layer, s, 6),
                                              *ex.detail_view(reader, m, layer, s, [], "word", {})], True)
            layer, state = pairs[-1]
            words = list(reader.clusters(m, layer, state, 6).words.sort_values("freq", ascending=False)["word"][:50])
            sids: list[str] = []
            for rnd in range(2):      # round 0 warms the caches, round 1 is measured
                rec = rnd == 1
                ks = itertools.cycle(range(2, 21))
                for i in range(reps):
                    k = next(ks)

                    def change_k(k=k):
                        return view(m, layer, state, k, sentences=sids)
                    if rec:
                        timed("change k", change_k)
                    else:
                        change_k()

                    lay2, st2 = pairs[i % len(pairs)]

                    def change_layer(lay2=lay2, st2=st2):
                        return [*view(m, lay2, st2, 6, sentences=sids),
                                *ex.detail_view(reader, m, lay2, st2, words[:1], "word", {})]
                    timed("layer/state", change_layer) if rec else change_layer()

                    w = words[i % len(words)]

                    def select_word(w=w):
                        new_words, sel, mode = ex.handle_click({"points": [{"customdata": ["word", w, 0]}]}, [], {})
                        return [new_words, sel, mode, *ex.cluster_view(reader, m, layer, state, 6, words=new_words),
                                *ex.detail_view(reader, m, layer, state, new_words, "word", sel),
                                ex.url_search(m, layer, state, 6, 20, new_words, sids, sel)]
                    timed("select word", select_word) if rec else select_word()

                    def add_sentence(i=i, rnd=rnd):
                        text = f"{SENTENCE} {words[(i + rnd * reps) % len(words)]}"
                        new, msg, _ = ex.add_sentence(reader, m, text, [], created_by="bench")
                        assert new, msg
                        return [new, msg, *ex.glyph_view(reader, m, layer, state, 6, new)]
                    if i < max(3, reps // 2):   # each rep writes a store partition: fewer of them
                        timed("add sentence", add_sentence) if rec else add_sentence()

                    other = ids[(ids.index(m) + 1) % len(ids)]

                    def switch_model(other=other):
                        layers, lay, states, st, kmax, clip, alert = ex.controls_for_model(reader, other, None, None)
                        return [layers, lay, states, st, kmax, clip, alert, *view(other, lay, st, 6),
                                *ex.detail_view(reader, other, lay, st, [], "word", {})]
                    timed("switch model", switch_model) if rec else switch_model()
    out = {}
    for name in ("change k", "layer/state", "select word", "add sentence", "switch model"):
        xs = results.get(name, [])
        out[name] = {"n": len(xs), "p50": statistics.median(xs) if xs else float("nan"),
                     "p95": _percentile(xs, 0.95), "max": max(xs) if xs else float("nan"),
                     "cold_max": max(cold.get(name, [float("nan")]))}
    return out


def first_render(store: Path, model: str | None, runs: int = 3) -> list[float]:
    """Seconds from navigation to a drawn, idle Explore page in headless Chromium (fresh server each run)."""
    import threading

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from waitress.server import create_server

    from analytics.settings import Settings
    from app.server import create_app

    app = create_app(Settings(store=store))
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=srv.run, daemon=True).start()
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1600,1300"):
        opts.add_argument(f)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    url = f"http://127.0.0.1:{srv.effective_port}/explore" + (f"?model={model}" if model else "")
    done = ("const g = document.querySelector('.cocluster-graph .js-plotly-plot');"
            "return !!(g && g.data && g.data.some(t => t.name === 'units') && g.querySelector('.scatterlayer')"
            " && document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0);")
    times = []
    try:
        d.get(url)   # warm the browser's cache of the JS bundles and the server's first-request setup
        while not d.execute_script(done):
            time.sleep(0.02)
        for _ in range(runs):
            d.get("about:blank")
            t0 = time.perf_counter()
            d.get(url)
            while not d.execute_script(done):
                time.sleep(0.02)
            times.append(time.perf_counter() - t0)
    finally:
        d.quit()
        srv.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--models", nargs="*", help="model ids (default: all in the store)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--first-render", action="store_true", help="also time Explore's first render in Chromium")
    ap.add_argument("--make-big", action="store_true", help="first train + analyse big-lstm (2x650, 10k vocab)")
    args = ap.parse_args()
    if args.make_big:
        make_big(args.store)
    res = bench(args.store, args.models, args.reps)
    print(f"\nstore {args.store} · models {', '.join(args.models or ['all'])} · {args.reps} reps "
          "(server time per interaction: callbacks + JSON encoding, ms)")
    print(f"{'interaction':14s} {'n':>4s} {'p50':>8s} {'p95':>8s} {'max':>8s} {'cold max':>9s}")
    for name, r in res.items():
        print(f"{name:14s} {r['n']:4d} {r['p50']:8.1f} {r['p95']:8.1f} {r['max']:8.1f} {r['cold_max']:9.1f}")
    if args.first_render:
        t = first_render(args.store, (args.models or [None])[0])
        print(f"\nfirst render of Explore in headless Chromium: {', '.join(f'{x:.2f}' for x in t)} s "
              f"(median {statistics.median(t):.2f} s)")


if __name__ == "__main__":
    main()
