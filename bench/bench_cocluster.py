"""Benchmark co-clustering and response accumulation.

    .venv/bin/python bench/bench_cocluster.py [--words 10000 --units 650 --ks 2 10 20]

Times :func:`analytics.coclusters.cocluster` on a random non-negative
words × units matrix with planted block structure (best of ``--repeats``), and
:class:`analytics.responses.ResponseAccumulator` throughput on random
Zipf-distributed word ids.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from analytics import coclusters  # noqa: E402
from analytics.responses import ResponseAccumulator  # noqa: E402


def planted_matrix(n_words: int, n_units: int, blocks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[W, H] float32 |s|-like matrix: noise plus `blocks` planted co-clusters."""
    rng = np.random.default_rng(seed)
    row_block = rng.integers(0, blocks, n_words)
    col_block = rng.integers(0, blocks, n_units)
    x = rng.random((n_words, n_units), dtype=np.float32) * 0.5
    x += (row_block[:, None] == col_block[None, :]) * rng.uniform(0.5, 1.5, blocks).astype(np.float32)[row_block][:,
                                                                                                                  None]
    return x, row_block


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_cocluster(args: argparse.Namespace) -> None:
    from sklearn.metrics import adjusted_rand_score

    x, row_block = planted_matrix(args.words, args.units, args.blocks, args.seed)
    print(f"\ncocluster: {args.words} x {args.units}, {args.blocks} planted blocks, "
          f"n_init={coclusters.N_INIT}, torch threads={torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'k':>4} {'seconds':>9} {'ARI(words)':>11}")
    for k in args.ks:
        secs, (rows, _) = best_of(lambda: coclusters.cocluster(x, k, seed=args.seed), args.repeats)
        ari = f"{adjusted_rand_score(row_block, rows):.3f}" if k == args.blocks else "-"
        print(f"{k:>4} {secs:>9.3f} {ari:>11}")
    if args.range:
        secs, res = best_of(lambda: coclusters.cocluster_range(x, range(2, 21), seed=args.seed), 1)
        print(f"cocluster_range(2..20): {secs:.2f} s for {len(res)} values of k")


def bench_responses(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    p = 1.0 / np.arange(1, args.vocab + 1)  # Zipf word frequencies
    ids = torch.from_numpy(rng.choice(args.vocab, args.rows, p=p / p.sum()))
    vals = torch.from_numpy(rng.standard_normal((args.rows, args.units), dtype=np.float32))
    print(f"\nResponseAccumulator: N={args.rows} rows, H={args.units}, vocab={args.vocab}, "
          f"chunk={args.chunk}, quantile_cap={args.cap}")
    print(f"{'phase':>10} {'seconds':>9} {'rows/s':>12}")
    acc = ResponseAccumulator(args.vocab, args.units, quantile_cap=args.cap)
    t0 = time.perf_counter()
    for s in range(0, args.rows, args.chunk):
        acc.update(ids[s:s + args.chunk], vals[s:s + args.chunk])
    t1 = time.perf_counter()
    stats = acc.finalize()
    t2 = time.perf_counter()
    for name, secs in (("update", t1 - t0), ("finalize", t2 - t1), ("total", t2 - t0)):
        print(f"{name:>10} {secs:>9.3f} {args.rows / secs:>12,.0f}")
    print(f"{len(stats.word_ids)} words seen, {int(np.minimum(stats.n, args.cap).sum())} rows kept for quantiles")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=10_000)
    ap.add_argument("--units", type=int, default=650)
    ap.add_argument("--blocks", type=int, default=10, help="planted co-clusters")
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 10, 20])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--range", action="store_true", help="also time cocluster_range(2..20)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--cap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", choices=["cocluster", "responses"], default=None)
    args = ap.parse_args()
    if args.skip != "cocluster":
        bench_cocluster(args)
    if args.skip != "responses":
        bench_responses(args)


if __name__ == "__main__":
    main()
