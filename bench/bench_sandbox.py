"""The SQL console's limits, query by query: how long each hostile query runs, how it is answered, what it costs here.

    .venv/bin/python bench/bench_sandbox.py [--store /tmp/dashstore] [--repeats 20]

Runs, through the console's own entry points (``app.logic.sql``, as the grid and the downloads do), the
queries of the hostile test of hosted mode, each in its own sandbox process, and prints for each: the
wall time, the answer, and the growth of this process's peak resident memory (``VmHWM``: what the web
worker would have paid). Then the size of the grid answer and of the CSV download of the two
"huge result" queries, and the overhead of a process per query (``SELECT 42``, p50/p95).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOSTILE = (
    "SELECT len(range(200000000)) AS n",
    "SELECT len(list_sort(range(150000000))) AS n",
    "SELECT len(list_distinct(range(3000000))) AS n",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    "SELECT count(*) FROM word_responses a, word_responses b",
)


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path("/tmp/dashstore"))
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    from app.logic import sql

    sql.run(args.store, "SELECT 1")  # the fork server starts once per process
    print(f"limits: {sql.TIMEOUT_S:g} s, DuckDB memory {sql.MEMORY_LIMIT}, grid {sql.GRID_MAX_ROWS:,} rows / "
          f"{sql.GRID_MAX_BYTES >> 20} MB, downloads {sql.DOWNLOAD_MAX_ROWS:,} rows / "
          f"{sql.DOWNLOAD_MAX_BYTES >> 20} MB")
    print(f"{'query':72s} {'wall s':>7s} {'peak +MB':>8s}  answer")
    for q in HOSTILE:
        before, t0 = peak_mb(), time.perf_counter()
        try:
            res = sql.run(args.store, q)
            answer = res.message
        except sql.SandboxError as e:
            answer = str(e).split(".")[0]
        print(f"{q[:72]:72s} {time.perf_counter() - t0:7.2f} {peak_mb() - before:8.0f}  {answer}", flush=True)

    q = "SELECT repeat('x', 20000) AS s FROM range(10000)"
    t0 = time.perf_counter()
    _, records, msg, _ = sql.run_for_grid(args.store, q)
    grid = len(json.dumps(records))
    print(f"grid of {q}: {len(records):,} rows, {grid / 2**20:.1f} MB of JSON in {time.perf_counter() - t0:.2f} s "
          "(200 MB of data)")
    q = "SELECT repeat('x', 2000) AS s FROM range(200000)"
    t0 = time.perf_counter()
    payload = sql.download(args.store, q, "csv")
    print(f"CSV download of {q}: {len(payload['content']) / 2**20:.1f} MB in {time.perf_counter() - t0:.2f} s "
          "(400 MB of data)")

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sql.run(args.store, "SELECT 42 AS x")
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"SELECT 42 through the sandbox, {args.repeats} runs: p50 {statistics.median(times) * 1e3:.0f} ms, "
          f"p95 {times[int(0.95 * (len(times) - 1))] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
