"""Pattern search over stored token states: latency of a 10-unit pattern, and the storage layouts compared.

    .venv/bin/python bench/bench_patterns.py [--tokens 100000 1000000] [--units 650 65] [--repeats 5]
    .venv/bin/python bench/bench_patterns.py --layouts       # array-per-token vs one row per unit and position

Synthetic states (tanh of AR(1) processes with per-unit persistence 0.3-0.98, like LSTM units; 10 units planted
to switch on for 4 steps after a trigger word) are written through the store exactly as the analysis writes
them (``TokenStateCollector.write``), then each search runs as the Patterns page runs it: read the pattern's
units with SQL through the store's views, search (numpy), read the words and their POS, summarise.
Times are the median of ``--repeats`` (the first run, which reads the file cold, is reported too).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analytics import patterns, store
from analytics import token_states as ts
from analytics.schema import VIEWS

PLANTED = [3, 50, 77, 120, 200, 333, 401, 500, 555, 649]     # of 650; scaled to the --units of a run
L, THETA = 4, 0.8


def planted(h: int) -> list[int]:
    """The 10 planted units of an h-unit layer (PLANTED scaled to h)."""
    return sorted({u * h // 650 for u in PLANTED})


def synthetic(n: int, h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(values [n, h] float32, word ids [n], vocabulary) with PLANTED units (those < h) on after 'trigger'."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 0.98, h)
    values = np.empty((n, h), np.float32)
    for u in range(h):
        values[:, u] = np.tanh(lfilter([np.sqrt(1 - a[u] ** 2)], [1.0, -a[u]], rng.standard_normal(n)))
    vocab = ["<pad>", "<unk>", "<eos>", "trigger"] + [f"w{i}" for i in range(5000)]
    ids = rng.integers(4, len(vocab), n)
    starts = np.arange(50, n - 10, 997)
    ids[starts] = 3
    units = planted(h)
    values[:, units] = np.minimum(values[:, units], THETA - 0.1)
    values[(starts[:, None] + 1 + np.arange(L)).ravel()[:, None], units] = 0.9
    return values, ids, vocab


def build(root: Path, model_id: str, n: int, h: int) -> float:
    """Write a models row, the vocabulary and the token states; returns the token_states file's MB."""
    values, ids, vocab = synthetic(n, h)
    col = ts.TokenStateCollector([(1, "h")], [(1, "h")], h, n, deltas=False)
    col.begin(None, 1, n)
    for i in range(0, n, 65536):
        col.add(torch.from_numpy(values[i:i + 65536])[:, None, :], i)
    del values
    row = {c.name: None for c in VIEWS["models"].columns}
    row.update(model_id=model_id, name=model_id, task="lm", cell="lstm", layers=2, hidden_size=h)
    with store.write_partition(root, "models", model_id) as w:
        w.write("models", pd.DataFrame([row]))
        w.write("vocab", pd.DataFrame({"model_id": model_id, "word_id": np.arange(len(vocab)), "word": vocab,
                                       "freq": 1, "pos": ["NOUN" if i % 2 else "VERB" for i in range(len(vocab))]}))
        ts.write_corpus_tokens(w, model_id, ids, vocab)
        col.write(w, model_id)
    return store.table_file(root, "models", model_id, "token_states").stat().st_size / 1e6


def one_search(root: Path, model_id: str, n: int, h: int, index: ts.UnitIndex | None) -> dict[str, float]:
    """One search as the page runs it (``index``: the footer parsed once, units read by row group) or, with
    ``index`` None, with the units read by SQL through the store's views."""
    t0 = time.perf_counter()
    con = store.connect(root)
    units = planted(h)
    series = (ts.unit_series(con, model_id, 1, "h", units, n) if index is None
              else ts.read_units(index, 1, "h", units, n))
    t1 = time.perf_counter()
    m = patterns.search(series, THETA, L, units=units, min_units=len(units) - 2, limit=200)
    t2 = time.perf_counter()
    words, tags = ts.vocab_arrays(con, model_id)          # the page caches these per model
    summary = patterns.position_summary(m, ts.word_ids(con, model_id), words, tags)
    t3 = time.perf_counter()
    con.close()
    assert m.total >= (n - 60) // 997 and len(summary)
    return {"read units": t1 - t0, "search": t2 - t1, "words + summary": t3 - t2, "total": t3 - t0,
            "matches": m.total}


def bench(root: Path, n: int, h: int, repeats: int) -> None:
    model_id = f"bench-{n}x{h}"
    t0 = time.perf_counter()
    mb = build(root, model_id, n, h)
    print(f"\n{n:,} tokens x {h} units: token_states {mb:.1f} MB ({mb * 1e6 / (n * h):.2f} B/value), "
          f"written in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    index = ts.UnitIndex.open(str(store.table_file(root, "models", model_id, "token_states")))
    print(f"  footer parsed once per model version: {(time.perf_counter() - t0) * 1000:.0f} ms "
          f"({index.metadata.num_row_groups} row groups)")
    for how, idx in (("page: row groups", index), ("SQL via the views", None)):
        runs = [one_search(root, model_id, n, h, idx) for _ in range(repeats + 1)]
        cold, warm = runs[0], runs[1:]
        print(f"  units read by {how}")
        for key in ("read units", "search", "words + summary", "total"):
            med = statistics.median(r[key] for r in warm) * 1000
            print(f"    {key:16s} median {med:7.1f} ms   (min {min(r[key] for r in warm) * 1000:6.1f}, "
                  f"first {cold[key] * 1000:6.1f})")
    print(f"  {int(cold['matches'])} matches of a {len(planted(h))}-unit pattern")


def layouts(root: Path, n: int = 104_448, h: int = 650) -> None:
    """The two layouts of the issue, same data: size and the queries the page and SQL users run."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    values, ids, _ = synthetic(n, h)
    half = values.astype(np.float16)
    a = root / "array.parquet"
    pq.write_table(pa.table({"layer": np.ones(n, np.int32), "position": np.arange(n, dtype=np.int32),
                             "word_id": ids.astype(np.int32),
                             "values": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * h),
                                                                pa.array(half.ravel()))}),
                   a, compression="zstd", row_group_size=65536)
    build(root, "layout", n, h)
    b = store.table_file(root, "models", "layout", "token_states")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW A AS FROM read_parquet('{a}'); CREATE VIEW B AS FROM read_parquet('{b}')")
    print(f"\nlayouts, {n:,} tokens x {h} units, float16: array per token {a.stat().st_size / 1e6:.1f} MB, "
          f"row per unit and position {b.stat().st_size / 1e6:.1f} MB")
    cols = ", ".join(f"values[{u + 1}]" for u in PLANTED)
    queries = [
        ("10 units, every token (the search)", f"SELECT position, {cols} FROM A",
         "SELECT unit, position, value FROM B WHERE unit IN (3, 50, 77, 120, 200, 333, 401, 500, 555, 649)"),
        ("every unit, 40 tokens (a passage)", "SELECT position, values FROM A WHERE position BETWEEN 5000 AND 5039",
         "SELECT unit, position, value FROM B WHERE position BETWEEN 5000 AND 5039"),
        ("one unit's top 20 tokens", "SELECT position, values[18] AS v FROM A ORDER BY v DESC LIMIT 20",
         "SELECT position, value FROM B WHERE unit = 17 ORDER BY value DESC LIMIT 20"),
        ("mean of every unit", "SELECT i, avg(v) FROM (SELECT unnest(values) AS v, "
                               "unnest(range(1, 651)) AS i FROM A) GROUP BY i",
         "SELECT unit, avg(value) FROM B GROUP BY unit"),
    ]
    for name, qa, qb in queries:
        times = []
        for q in (qa, qb):
            ts_ = []
            for _ in range(3):
                t0 = time.perf_counter()
                con.execute(q).fetchnumpy()               # numpy, as the page reads (no Python rows)
                ts_.append(time.perf_counter() - t0)
            times.append(min(ts_) * 1000)
        print(f"  {name:38s} array {times[0]:8.1f} ms   per unit {times[1]:8.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--units", type=int, nargs="+", default=[650, 65],
                    help="units per token for each --tokens value (the last repeats)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layouts", action="store_true", help="compare the storage layouts instead")
    ap.add_argument("--store", help="keep the store here (default: a temporary directory)")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="rnnvis-patterns-") as tmp:
        root = Path(args.store or tmp)
        if args.layouts:
            layouts(root)
            return
        for i, n in enumerate(args.tokens):
            bench(root, n, args.units[min(i, len(args.units) - 1)], args.repeats)


if __name__ == "__main__":
    main()
