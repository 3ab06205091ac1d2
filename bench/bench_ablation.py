"""Cost of ablations (analytics.ablation) on a 2x650 LSTM with a 10k vocabulary, against a same-run baseline.

    .venv/bin/python bench/bench_ablation.py [--tokens 20000] [--threads 2] [--layers 1,0]
    .venv/bin/python bench/bench_ablation.py --precompute [--precompute-tokens N]
    .venv/bin/python bench/bench_ablation.py --quick                  # tiny, checks it runs

On demand: one unit set the size of a k = 6 cluster (108 of 650 units) plus 20 random sets, mode zero, over
the first ``--tokens`` tokens of a random stream read as one stream, for each ablated layer; the baseline is
one fused forward over the same tokens with the loss of every token (``analytics.losses.lm_token_losses``).
Random weights: the cost does not depend on what the weights are.

``--precompute``: what :func:`analytics.ablation.write_ablations` would add to an analysis.  An untrained
2x650 LSTM is analysed over the Brown test split (``analyze_model``, states h and c, as
bench/bench_analysis.py --untrained), then its precomputed ablations (every unit cluster of layer 1's h and c
at k = 6, 20 random sets each, on a prefix) are computed from the stored co-clusters and timed.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")      # as bench_analysis.py: waiting threads sleep
import torch  # noqa: E402
from bench_analysis import untrained_checkpoint  # noqa: E402  (bench/ is on the path of a bench script)

from analytics import ablation, store  # noqa: E402
from analytics.losses import lm_token_losses  # noqa: E402
from analytics.pipeline import AnalysisOptions, analyze_model  # noqa: E402
from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint  # noqa: E402
from models.config import ModelConfig, TrainConfig  # noqa: E402
from models.corpora import load_corpus  # noqa: E402
from models.rnn import RecurrentModel  # noqa: E402
from models.train import lm_stream  # noqa: E402


class _Clock:
    """Wall seconds and this process's CPU seconds of a call.  On a machine shared with other work the wall
    time stretches with the load; CPU seconds / threads is what the call would take on idle cores (an upper
    bound on that when the threads do not all work all the time)."""

    def __init__(self, fn):
        w, c = time.perf_counter(), time.process_time()
        self.out = fn()
        self.wall, self.cpu = time.perf_counter() - w, time.process_time() - c

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def _timed(fn):
    clock = _Clock(fn)
    return clock, clock.out


def on_demand(hidden: int, vocab: int, tokens: int, layers: list[int], cluster: int) -> None:
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig("lm", "lstm", 2, hidden, hidden, vocab_size=vocab)).eval()
    stream = torch.randint(0, vocab, (tokens,), generator=torch.Generator().manual_seed(1))
    text = ablation.LMText(stream, [None] * vocab)
    units = tuple(range(0, hidden, max(1, hidden // cluster)))[:cluster]
    base, _ = _timed(lambda: lm_token_losses(model, stream))
    print(f"fused forward + loss over {tokens} tokens: {base}")
    for layer in layers:
        s, rows = _timed(lambda: ablation.ablate("bench", model, text, layer, "h", [ablation.Tested(units)],
                                                 modes=("zero",)))
        print(f"ablate layer {layer} h, {len(units)} units + 20 random sets, zero: {s} "
              f"= {s.wall / base.wall:.1f}x the fused forward's wall time, {s.cpu / base.cpu:.1f}x its CPU "
              f"({len(rows)} rows)")


def precompute(root: Path, tokens: int | None, threads: int) -> None:
    tc = TrainConfig(corpus="brown", vocab_size=10_000)
    untrained_checkpoint(root, "lstm650", ModelConfig("lm", "lstm", 2, 650, 650), tc)
    opts = AnalysisOptions(split="test", states="hidden", gradient_k=50)
    analysis_s, _ = _timed(lambda: analyze_model("lstm650", root, opts, threads=threads))
    ckpt = read_checkpoint(find_checkpoint(root, "lstm650"))
    model, vocab = model_from_checkpoint(ckpt, "cpu")
    stream = lm_stream(load_corpus("brown"), vocab, "test")
    with store.connect(root) as con:
        clusters = store.query(con, "SELECT * FROM coclusters WHERE model_id = 'lstm650' AND layer = 1 AND k = ?",
                               [ablation.DEFAULT_K])

    class _Count:
        rows = n = 0

        def write(self, table, frame):
            self.rows, self.n = self.rows + len(frame), int(frame["n"].max())

    sink = _Count()
    with torch.inference_mode():
        torch.set_num_threads(threads or torch.get_num_threads())
        pre_s, _ = _timed(lambda: ablation.write_ablations(sink, "lstm650", model, ablation.LMText(
            stream, [vocab.pos.get(w) for w in vocab.words]), clusters, tokens=tokens))
    print(f"analysis of the 2x650 LSTM over Brown test ({stream.numel()} tokens): {analysis_s}")
    print(f"precomputed ablations, {sink.n}-token prefix ({sink.rows} rows): {pre_s} "
          f"= +{100 * pre_s.wall / analysis_s.wall:.0f}% of the analysis's wall time, "
          f"+{100 * pre_s.cpu / analysis_s.cpu:.0f}% of its CPU")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--tokens", type=int, default=20_000)
    ap.add_argument("--layers", default="1,0", help="ablated layers to time, comma-separated")
    ap.add_argument("--cluster", type=int, default=108, help="units in the tested set (650 / 6 ~ 108)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precompute", action="store_true")
    ap.add_argument("--precompute-tokens", type=int, default=None, help="default: precompute_tokens's rule")
    ap.add_argument("--store", default="")
    ap.add_argument("--quick", action="store_true", help="2x32 units, 1k vocabulary, 500 tokens")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.quick:
        a.hidden, a.vocab, a.tokens, a.cluster = 32, 1000, 500, 5
    if a.precompute:
        with tempfile.TemporaryDirectory(prefix="rnnvis-bench-ablation-") as tmp:
            precompute(Path(a.store or tmp), a.precompute_tokens, a.threads)
        return
    print(f"2x{a.hidden} LSTM, vocabulary {a.vocab}, {a.threads} threads")
    on_demand(a.hidden, a.vocab, a.tokens, [int(x) for x in a.layers.split(",")], a.cluster)


if __name__ == "__main__":
    main()
