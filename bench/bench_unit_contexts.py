"""CPU time of the units' top contexts during the trace: the exact stream trace with and without them.

    .venv/bin/python bench/bench_unit_contexts.py --store /tmp/rnnvis-bench --model bench-lstm-650-untrained \
        --threads 2 --max-tokens 32768 --repeats 2

Traces the Brown test split (its first ``--max-tokens``) as the analysis does (analytics/lm_trace.py, the
default states h and c, statistics included), alternately without and with the
:class:`analytics.unit_contexts.ContextTracker`, and prints the process CPU time of each (CPU time, not wall:
the machine may be shared) and the tracker's cost as a share of the trace.  The checkpoint is the one
bench/bench_analysis.py writes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from analytics.lm_trace import trace_lm  # noqa: E402
from analytics.pipeline import AnalysisOptions  # noqa: E402
from analytics.responses import ResponseAccumulator  # noqa: E402
from analytics.unit_contexts import ContextTracker, TraceSinks  # noqa: E402
from models.buffers import Workspace  # noqa: E402
from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint  # noqa: E402
from models.corpora import load_corpus  # noqa: E402
from models.train import lm_stream  # noqa: E402


def run(model, vocab_size: int, stream, opts, keys, tracker: bool) -> float:
    """CPU seconds of one trace (+ statistics, + the tracker's frame when asked)."""
    H = model.cfg.hidden_size
    with tempfile.TemporaryDirectory() as spill:
        acc = ResponseAccumulator(vocab_size, len(keys) * H, quantile_cap=opts.quantile_cap, spill_dir=spill)
        ctx = ContextTracker(keys, H) if tracker else None
        t0 = time.process_time()
        trace_lm(model, stream, opts, keys, Workspace("cpu"), acc, lambda f: None, TraceSinks(ctx))
        if ctx is not None:
            ctx.frame("bench")
        spent = time.process_time() - t0
        acc.close()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = read_checkpoint(find_checkpoint(args.store, args.model))
    model, vocab = model_from_checkpoint(ckpt)
    opts = AnalysisOptions(max_tokens=args.max_tokens)
    stream = lm_stream(load_corpus(ckpt["train_config"]["corpus"]), vocab, "test", args.max_tokens)
    keys = [(layer, s) for layer in range(model.cfg.layers) for s in ("h", "c")]
    base, with_ctx = [], []
    for _ in range(args.repeats):
        base.append(run(model, len(vocab), stream, opts, keys, False))
        with_ctx.append(run(model, len(vocab), stream, opts, keys, True))
    b, w = statistics.median(base), statistics.median(with_ctx)
    print(f"{args.model}: {stream.numel():,} tokens, {len(keys)} states, {args.threads} threads; CPU s "
          f"without {b:.1f} {base}, with {w:.1f} {with_ctx}; top contexts +{w - b:.1f} s = +{(w - b) / b:.1%} "
          f"of the trace")


if __name__ == "__main__":
    main()
