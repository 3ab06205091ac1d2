"""What the 2-D maps add to an analysis: the time of ``analytics.projections.projection_frame`` (PCA and t-SNE of
the words and of the units) for every co-clustered (model, layer, state) of a store, on the same inputs the
analysis gives it (the stored s(w) of the co-clustered words).

    .venv/bin/rnnvis --store /tmp/demo demo --no-serve       # prints "store ... ready in N s"
    .venv/bin/python bench/bench_projections.py --store /tmp/demo [--repeats 3]

    .venv/bin/python bench/bench_projections.py --store /tmp/demo --page [--lm demo-lstm --other demo-gru]

Prints one line per (model, layer, state) with the median seconds of each map, and the total: the time the
analysis hook adds to that store's analysis (compare with the ``ready in`` of the same run; on a loaded machine
compare CPU seconds: ``time`` of the demo command gives its user time). With ``--page``: the server time of
the projection page's figure callback through Dash's dispatch (as a browser posts it), per interaction.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--page", action="store_true", help="time the page's callbacks instead of the fits")
    ap.add_argument("--lm", default="demo-lstm")
    ap.add_argument("--other", default="demo-gru")
    args = ap.parse_args()
    if args.page:
        page(args)
        return

    from analytics.projections import project
    from app.reader import Reader

    r = Reader(args.store)
    total = cpu_total = 0.0
    for model in r.model_ids():
        for layer, states in r.layer_states(model).items():
            for state in (s for s in states if s in ("h", "c")):
                d = r.layer_data(model, layer, state)
                times = {}
                for axis, x in (("word", d.mean), ("unit", d.mean.T)):
                    for method in ("pca", "tsne"):
                        runs, cpu = [], []
                        for _ in range(args.repeats):
                            t, c = time.perf_counter(), time.process_time()
                            project(x, method, seed=0)
                            runs.append(time.perf_counter() - t)
                            cpu.append(time.process_time() - c)
                        times[f"{axis} {method}"] = statistics.median(runs)
                        cpu_total += statistics.median(cpu)
                total += sum(times.values())
                print(f"{model} L{layer} {state} {d.mean.shape[0]} words x {d.mean.shape[1]} units: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()), flush=True)
    print(f"total {total:.1f} s wall, {cpu_total:.1f} s CPU (medians of {args.repeats})")


def page(args) -> None:
    """Server time of the figure callback (both maps and the summary) per interaction, p50 / max in ms."""
    import json

    from analytics.settings import Settings
    from app import ids
    from app.server import create_app
    from tests.app.test_dispatch import Layout, _body, _walk

    app = create_app(Settings(store=args.store))
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    client.get("/projection")
    found: dict = {}
    _walk(app.validation_layout, found)
    layout = Layout(found)
    dep = next(d for d in deps if "projection-summary.children" in d["output"])

    def post(values: dict) -> float:
        body = _body(dep, layout)
        for e in body["inputs"]:
            cid = e["id"] if isinstance(e["id"], str) else json.dumps(e["id"], sort_keys=True, separators=(",", ":"))
            e["value"] = values.get((cid, e["property"]), e["value"])
        t = time.perf_counter()
        resp = client.post("/_dash-update-component", json=body)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        return (time.perf_counter() - t) * 1e3

    base = {(ids.PJ_MODEL, "value"): args.lm, (ids.PJ_LAYER, "value"): 1, (ids.PJ_STATE, "value"): "h",
            (ids.PJ_METHOD, "value"): "tsne", (ids.PJ_K, "value"): 8, (ids.PJ_COLOR, "value"): "pos",
            (ids.PJ_DRAG, "value"): "lasso", (ids.PJ_SELECTION, "data"): {"words": [], "units": []}}
    compare = {**base, (ids.PJ_MODEL_B, "value"): args.other, (ids.PJ_LAYER_B, "value"): 0}
    print(f"first map (cold caches): {post(base):.0f} ms; first side-by-side: {post(compare):.0f} ms")
    cases = {
        "select words/units": [{**base, (ids.PJ_SELECTION, "data"): {"words": ["he", "she"][: i % 3], "units": [i]}}
                               for i in range(20)],
        "t-SNE <-> PCA": [{**base, (ids.PJ_METHOD, "value"): m} for m in ("pca", "tsne") * 10],
        "colour POS <-> cluster": [{**base, (ids.PJ_COLOR, "value"): c} for c in ("cluster", "pos") * 10],
        "side by side, select": [{**compare, (ids.PJ_SELECTION, "data"): {"words": ["he"], "units": [i]}}
                                 for i in range(20)],
    }
    for name, runs in cases.items():
        ms = [post(v) for v in runs]
        print(f"{name}: p50 {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")


if __name__ == "__main__":
    main()
