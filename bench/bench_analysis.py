"""Analysis of a 2x650 LSTM with a 10k vocabulary over ~100k Brown test tokens: wall time and store size.

    .venv/bin/python bench/bench_analysis.py [--store /tmp/rnnvis-bench] [--hidden 650] [--states all,h,c]

The model is trained for one short epoch (its weights only need to be a real
model's; the analysis cost does not depend on how well it is trained), then
`analyze_model` runs over the whole Brown test split for each --states value.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from models.config import ModelConfig, TrainConfig
from models.checkpoint import checkpoint_file
from models.train import train_model


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="/tmp/rnnvis-bench")
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--states", default="hidden;all", help="semicolon-separated --states values to measure")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.store)
    model_id = f"bench-lstm-{args.hidden}"
    if not checkpoint_file(root, model_id).exists():
        t0 = time.perf_counter()
        train_model(model_id, ModelConfig("lm", "lstm", 2, args.hidden, args.hidden, 0.5),
                    TrainConfig(corpus="brown", vocab_size=10_000, epochs=1, max_train_tokens=30_000, batch_size=20,
                                bptt=35), root, threads=args.threads or None)
        print(f"trained {model_id} (1 short epoch) in {time.perf_counter() - t0:.0f}s")
    print(f"{'states':8s} {'tokens':>8s} {'wall s':>7s} {'rows':>11s} {'store MB':>9s}")
    for states in args.states.split(";"):
        res = analyze_model(model_id, root, AnalysisOptions(states=states), threads=args.threads or None)
        part = store.partition_path(root, "models", model_id)
        rows = store.query(store.connect(root), "SELECT count(*) AS n FROM word_responses WHERE model_id = ?",
                           [model_id])["n"][0]
        print(f"{states:8s} {res.tokens:8,d} {res.wall_s:7.1f} {rows:11,d} {dir_size(part) / 1e6:9.1f}")


if __name__ == "__main__":
    main()
