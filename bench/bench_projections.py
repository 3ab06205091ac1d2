"""What the 2-D maps add to an analysis: the time of ``analytics.projections.projection_frame`` (PCA and t-SNE of
the words and of the units) for every co-clustered (model, layer, state) of a store, on the same inputs the
analysis gives it (the stored s(w) of the co-clustered words).

    .venv/bin/rnnvis --store /tmp/demo demo --no-serve       # prints "store ... ready in N s"
    .venv/bin/python bench/bench_projections.py --store /tmp/demo [--repeats 3]

Prints one line per (model, layer, state) with the median seconds of each map, and the total: the time the
analysis hook adds to that store's analysis (compare with the ``ready in`` of the same run; on a loaded machine
compare CPU seconds: ``time`` of the demo command gives its user time).
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
