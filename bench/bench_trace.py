"""Trace + statistics throughput against the fused module's forward pass alone.

    .venv/bin/python bench/bench_trace.py [--hidden 200,650] [--threads 1,2] [--batch 64] [--steps 256]
    python bench/bench_trace.py --device cuda --hidden 650,1500

"Trace + statistics" is what the analysis does per chunk (analytics.pipeline's
own chunk loop): model.trace_packed over all layers and states (h, c, i, f, g,
o; h and c with --states hidden, the analysis' default) with Δh for h and c, and one
ResponseAccumulator update covering every layer-state, on the model's device.  The baseline is one fused nn.LSTM
forward (oneDNN on a CPU, cuDNN with torch's default settings on a GPU) over
the same tokens, embedding included.  Ratio = ours / baseline tokens/s; for
every hidden size and thread count both sides are timed --repeats times,
alternating in one process, and the best time of each is kept: the ratios
of one run are comparable even on a shared machine.  The next column is the
same ratio in process CPU time (all threads, page faults included); the last
is the median over the --repeats back-to-back pairs (fused, then ours) of each
pair's wall-clock ratio, which a neighbour that slows the machine for a while
disturbs least (the best times may come from different moments).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

# Before torch loads OpenMP: waiting threads sleep (see app/cli.py main); a value set outside wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from analytics import moments
from analytics.lm_trace import lm_chunks
from analytics.responses import ResponseAccumulator
from models.buffers import Workspace
from models.config import ModelConfig
from models.rnn import RecurrentModel


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: RecurrentModel, data: torch.Tensor, args,
            device: torch.device) -> tuple[float, float, float, float, float]:
    """(fused s, trace + statistics s, the same in process CPU time, the median pair ratio): the best of
    --repeats alternating runs over data [chunks, steps, B], and the median of each back-to-back pair's ratio.
    CPU time counts every thread of the process (page faults included); wall time is what a user waits."""
    stream = data.reshape(-1, data.shape[-1])                          # [chunks * steps, B]
    H = model.cfg.hidden_size
    keys = [k for k in model.state_keys() if args.states == "all" or k[1] in ("h", "c")]
    fused, ours, fused_cpu, ours_cpu = (float("inf"),) * 4
    pairs = []
    for _ in range(args.repeats):
        with torch.no_grad():
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for x in data:
                model.rnn(model.embed(x.to(device)))
            _sync(device)
            fused_s = time.perf_counter() - t0
            fused = min(fused, fused_s)
            fused_cpu = min(fused_cpu, time.process_time() - c0)
        spill = tempfile.mkdtemp()
        try:
            acc = ResponseAccumulator(args.vocab, len(keys) * H, spill_dir=spill, device=device)
            ws = Workspace(device)
            model.clear_trace_cache()                                  # each analysis builds its own
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for x, values in lm_chunks(model, stream, args.steps, keys, ws):
                acc.update(x.reshape(-1), values.view(-1, values.shape[-1]))
            _sync(device)
            pairs.append(fused_s / (time.perf_counter() - t0))
            ours = min(ours, time.perf_counter() - t0)
            ours_cpu = min(ours_cpu, time.process_time() - c0)
            acc.close()
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    return fused, ours, fused_cpu, ours_cpu, statistics.median(pairs)


def stats_ab(model: RecurrentModel, data: torch.Tensor, args) -> None:
    """--stats-ab: the statistics alone (fresh accumulators over the traced chunks), the compiled CPU loop
    against torch's passes (moments.CPU_LOOP off), alternating, best of --repeats."""
    keys = [k for k in model.state_keys() if args.states == "all" or k[1] in ("h", "c")]
    saved = [(x.clone(), v.clone()) for x, v in lm_chunks(model, data.reshape(-1, data.shape[-1]), args.steps, keys,
                                                          Workspace("cpu"))]
    width, n, best = len(keys) * model.cfg.hidden_size, data.numel(), {}
    loop = moments.CPU_LOOP
    try:
        for r in range(args.repeats + 1):                                  # round 0 warms up
            for on in (False, loop):
                moments.CPU_LOOP = on
                spill = tempfile.mkdtemp()
                acc = ResponseAccumulator(args.vocab, width, spill_dir=spill)
                t0, c0 = time.perf_counter(), time.process_time()
                for x, values in saved:
                    acc.update(x.reshape(-1), values.view(-1, width))
                w, c = time.perf_counter() - t0, time.process_time() - c0
                acc.close()
                shutil.rmtree(spill, ignore_errors=True)
                if r:
                    best[on] = min(best.get(on, (float("inf"),) * 2), (w, c))
    finally:
        moments.CPU_LOOP = loop
    for on, (w, c) in best.items():
        print(f"{model.cfg.hidden_size:6d} statistics, {'compiled loop' if on else 'torch passes '}: "
              f"{w * 1e6 / n:7.1f} µs a token wall, {c * 1e6 / n:7.1f} CPU ({c * 1e9 / (n * width):.2f} ns a value)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="200,650")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default="0", help="torch CPU thread counts to measure, e.g. 1,2 (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--states", choices=("all", "hidden"), default="all",
                    help="all 6 LSTM states (the default), or h and c only (the analysis' default)")
    ap.add_argument("--stats-ab", action="store_true",
                    help="the statistics alone: the compiled CPU loop against torch's passes (1 thread)")
    args = ap.parse_args()
    device = torch.device(args.device)
    default_threads = torch.get_num_threads()
    torch.manual_seed(0)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"states {args.states}, device {device}{gpu}, "
          f"torch {torch.__version__}")
    print(f"{'hidden':>6s} {'threads':>7s} {'batch':>5s} {'fused tok/s':>12s} {'trace+stats tok/s':>18s} {'ratio':>6s}"
          f" {'cpu-time ratio':>14s} {'median pair':>11s}")
    for H in map(int, args.hidden.split(",")):
        model = RecurrentModel(ModelConfig("lm", "lstm", 2, H, H, 0.0, args.vocab)).eval().to(device)
        # Zipf-like token ids, as in text
        probs = 1.0 / torch.arange(1, args.vocab + 1, dtype=torch.float64)
        data = torch.multinomial(probs / probs.sum(), args.steps * args.batch * args.chunks, replacement=True)
        data = data.view(args.chunks, args.steps, args.batch)
        if args.stats_ab:
            torch.set_num_threads(1)
            stats_ab(model, data, args)
            continue
        for threads in map(int, args.threads.split(",")):
            torch.set_num_threads(threads or default_threads)
            measure(model, data[:1], argparse.Namespace(**{**vars(args), "repeats": 1}), device)   # warm-up
            fused, ours, fused_cpu, ours_cpu, median = measure(model, data, args, device)
            n = data.numel()
            print(f"{H:6d} {torch.get_num_threads():7d} {args.batch:5d} {n / fused:12,.0f} {n / ours:18,.0f} "
                  f"{fused / ours:6.3f} {fused_cpu / ours_cpu:14.3f} {median:11.3f}", flush=True)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
