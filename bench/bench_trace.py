"""Trace + statistics throughput against the fused module's forward pass alone.

    .venv/bin/python bench/bench_trace.py [--hidden 200,650] [--batch 64] [--steps 256]

"Trace + statistics" is what the analysis does per chunk (analytics.pipeline's
own chunk loop): model.trace_packed over all layers and states (h, c, i, f, g,
o) with Δh for h and c, and one ResponseAccumulator update covering every
layer-state.  The baseline is one fused nn.LSTM forward over the same tokens
(embedding included).  Ratio = ours / baseline tokens/s; each side is timed
--repeats times, alternating, and the best time of each is kept.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch

from analytics.pipeline import _lm_chunks
from analytics.responses import ResponseAccumulator
from models.buffers import Workspace
from models.config import ModelConfig
from models.rnn import RecurrentModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="200,650")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'hidden':>6s} {'batch':>5s} {'fused tok/s':>12s} {'trace+stats tok/s':>18s} {'ratio':>6s}")
    for H in map(int, args.hidden.split(",")):
        model = RecurrentModel(ModelConfig("lm", "lstm", 2, H, H, 0.0, args.vocab)).eval()
        # Zipf-like token ids, as in text
        probs = 1.0 / torch.arange(1, args.vocab + 1, dtype=torch.float64)
        data = torch.multinomial(probs / probs.sum(), args.steps * args.batch * args.chunks, replacement=True)
        data = data.view(args.chunks, args.steps, args.batch)
        stream = data.reshape(-1, args.batch)                             # [chunks * steps, B]
        keys = model.state_keys()
        fused, ours = float("inf"), float("inf")
        for _ in range(args.repeats):
            with torch.no_grad():
                t0 = time.perf_counter()
                for x in data:
                    model.rnn(model.embed(x))
                fused = min(fused, time.perf_counter() - t0)
            spill = tempfile.mkdtemp()
            try:
                acc = ResponseAccumulator(args.vocab, len(keys) * H, spill_dir=spill)
                ws = Workspace()
                model.clear_trace_cache()                             # each analysis builds its own
                t0 = time.perf_counter()
                for x, values in _lm_chunks(model, stream, args.steps, keys, ws):
                    acc.update(x.reshape(-1), values.view(-1, values.shape[-1]))
                ours = min(ours, time.perf_counter() - t0)
                acc.close()
            finally:
                shutil.rmtree(spill, ignore_errors=True)
        n = data.numel()
        print(f"{H:6d} {args.batch:5d} {n / fused:12,.0f} {n / ours:18,.0f} {fused / ours:6.3f}")


if __name__ == "__main__":
    main()
