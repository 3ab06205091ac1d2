"""Analysis of a 2-layer LSTM with a 10k vocabulary over the Brown test split: wall time and store size.

    .venv/bin/python bench/bench_analysis.py [--hidden 650] [--states "hidden;all"] [--threads 2]
    .venv/bin/python bench/bench_analysis.py --hidden 1500 --untrained --threads 2    # the paper's 2x1500
    python bench/bench_analysis.py --hidden 1500 --untrained --device cuda
    .venv/bin/python bench/bench_analysis.py --quick                                   # tiny, checks it runs

By default the model is trained for one short epoch (its weights only need to
be a real model's; the analysis cost does not depend on how well it is
trained).  ``--untrained`` writes a checkpoint of freshly initialised weights
instead (training, even briefly, and its evaluation passes take longer than
the analysis at 2x1500 on a CPU).  Then ``analyze_model`` runs over the whole
Brown test split for each --states value, and the stages' times are printed
from its progress reports.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

# Before torch loads OpenMP: waiting threads sleep (see app/cli.py main); a value set outside wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from models.checkpoint import checkpoint_file, save_checkpoint
from models.config import ModelConfig, TrainConfig
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.text import Vocab
from models.train import train_model


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def untrained_checkpoint(root: Path, model_id: str, mc: ModelConfig, tc: TrainConfig) -> None:
    """A complete checkpoint of freshly initialised weights, as train_model would write it."""
    corpus = load_corpus(tc.corpus)
    vocab = Vocab.build(corpus.tokens("train"), tc.vocab_size)
    mc = dataclasses.replace(mc, vocab_size=len(vocab))
    torch.manual_seed(tc.seed)
    model = RecurrentModel(mc)
    model.init_weights(tc.init_range, tc.init)
    save_checkpoint(checkpoint_file(root, model_id), {
        "model_id": model_id, "name": model_id, "corpus": corpus.name, "created_by": "bench",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "label_names": list(corpus.label_names), "vocab": vocab.to_dict(),
        "model_config": dataclasses.asdict(mc), "train_config": dataclasses.asdict(tc),
        "state_dict": model.state_dict(), "metrics": [], "complete": True})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="/tmp/rnnvis-bench")
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--states", default="hidden;all", help="semicolon-separated --states values to measure")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--untrained", action="store_true", help="freshly initialised weights, no training")
    ap.add_argument("--max-tokens", type=int, default=0, help="analyse the first N test tokens (0 = all)")
    ap.add_argument("--gradient-k", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="2x32 units, 5k tokens, untrained: checks the script runs")
    args = ap.parse_args()
    if args.quick:
        args.hidden, args.untrained, args.states = 32, True, "hidden"
        args.max_tokens = args.max_tokens or 5_000
        args.gradient_k = min(args.gradient_k, 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.store)
    model_id = f"bench-lstm-{args.hidden}" + ("-untrained" if args.untrained else "")
    mc = ModelConfig("lm", "lstm", 2, args.hidden, args.hidden, 0.5)
    tc = TrainConfig(corpus="brown", vocab_size=10_000, epochs=1, max_train_tokens=30_000, batch_size=20, bptt=35)
    if not checkpoint_file(root, model_id).exists():
        t0 = time.perf_counter()
        if args.untrained:
            untrained_checkpoint(root, model_id, mc, tc)
        else:
            train_model(model_id, mc, tc, root, threads=args.threads or None)
        print(f"{'initialised' if args.untrained else 'trained (1 short epoch)'} {model_id} in "
              f"{time.perf_counter() - t0:.0f}s")
    device = torch.device(args.device)
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'states':8s} {'tokens':>8s} {'wall s':>7s} {'CPU s':>7s} {'rows':>11s} {'store MB':>9s}  stages (s)")
    for states in args.states.split(";"):
        stages: dict[str, float] = {}
        clock = [time.perf_counter(), None]

        def on_progress(p: dict) -> None:
            now = time.perf_counter()
            if p["stage"] != clock[1]:
                clock[1] = p["stage"]
            stages[p["stage"]] = stages.get(p["stage"], 0.0) + now - clock[0]
            clock[0] = now

        opts = AnalysisOptions(states=states, max_tokens=args.max_tokens, gradient_k=args.gradient_k)
        cpu = time.process_time()      # CPU time of this process (all its threads): robust to a shared machine
        res = analyze_model(model_id, root, opts, device=device, threads=args.threads or None, show_progress=False,
                            on_progress=on_progress)
        cpu = time.process_time() - cpu
        part = store.partition_path(root, "models", model_id)
        rows = store.query(store.connect(root), "SELECT count(*) AS n FROM word_responses WHERE model_id = ?",
                           [model_id])["n"][0]
        split = " ".join(f"{k} {v:.1f}" for k, v in stages.items())
        print(f"{states:8s} {res.tokens:8,d} {res.wall_s:7.1f} {cpu:7.1f} {rows:11,d} "
              f"{dir_size(part) / 1e6:9.1f}  {split}", flush=True)


if __name__ == "__main__":
    main()
