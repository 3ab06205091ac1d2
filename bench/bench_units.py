"""Find units and the unit page on a stored model: wall time per query, through the dashboard's reader.

    .venv/bin/python bench/bench_units.py --store /tmp/rnnvis-bench --model bench-lstm-650-untrained
    .venv/bin/python bench/bench_units.py --store var/store --model demo-lstm --repeats 5

Each query runs on a fresh reader (no cache: what a first click costs) ``--repeats`` times; the median is
printed.  The model is analysed beforehand (bench/bench_analysis.py writes the 2x650 LSTM over Brown's test
split).  Queries: Find units by a word ("not"), by a POS tag ("NOUN"), by a description term ("punctuation"),
and the reads of one unit page (summary, top contexts with their text, tags, distribution).
"""
from __future__ import annotations

import argparse
import statistics
import time

from app.reader import Reader

QUERIES = (("word", "not"), ("tag", "NOUN"), ("text", "punctuation"))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--unit", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    info = Reader(args.store).model(args.model)
    print(f"{args.model}: {info['layers']}x{info['hidden_size']} {info['cell']}, states {info['states']}")
    for mode, text in QUERIES:
        times = []
        for _ in range(args.repeats):
            r = Reader(args.store)
            r.vocab(args.model)                       # the vocabulary is cached by every page already
            times.append(timed(lambda r=r: r.find_units(args.model, mode, text)))
        found = Reader(args.store).find_units(args.model, mode, text)
        print(f"find by {mode:5s} {text!r:14s} {1000 * statistics.median(times):7.1f} ms  ({len(found)} units)")
    key = (args.model, args.layer, "h", args.unit)
    for name in ("unit_summary", "unit_contexts", "unit_tags", "unit_distribution"):
        times = [timed(lambda name=name: getattr(Reader(args.store), name)(*key)) for _ in range(args.repeats)]
        print(f"unit page {name:18s} {1000 * statistics.median(times):7.1f} ms")


if __name__ == "__main__":
    main()
