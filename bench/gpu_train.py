"""Training epochs on one device: our trainer against the plain loop of bench/bench_train.py.

    python bench/gpu_train.py [--preset lstm-medium] [--epochs 3] [--device cuda]
    python bench/gpu_train.py --quick            # a tiny run on any machine (tests the script)

Both sides train the same preset's model from the same seed over the same
batchified Brown training stream on ``--device``, one epoch each in turn
(ours, plain, plain, ours, ...), so that clocks and other load hit both alike.
Ratio = ours / plain tokens per second (target on a GPU: >= 1.0).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import plain_loop  # noqa: E402  (the reference loop, one definition)

from models.config import get_preset  # noqa: E402
from models.corpora import load_corpus  # noqa: E402
from models.rnn import RecurrentModel  # noqa: E402
from models.text import Vocab  # noqa: E402
from models.train import batchify, lm_stream, make_optimizer, train_lm_epoch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="lstm-medium")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tokens", type=int, default=0, help="train on the first N tokens (0 = the whole split)")
    ap.add_argument("--quick", action="store_true", help="2x32 units, 20k tokens, 1 epoch: checks the script runs")
    args = ap.parse_args()
    device = torch.device(args.device)
    p = get_preset(args.preset)
    tc, mc = p.train, p.model
    if args.quick:
        mc.hidden_size = mc.embed_size = 32
        args.tokens, args.epochs = args.tokens or 20_000, 1
    corpus = load_corpus("brown")
    vocab = Vocab.build(corpus.tokens("train"), tc.vocab_size)
    mc.vocab_size = len(vocab)
    data = batchify(lm_stream(corpus, vocab, "train", args.tokens), tc.batch_size).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.preset} {mc.layers}x{mc.hidden_size} on {name}, torch {torch.__version__}: "
          f"{data.numel():,} tokens, batch {tc.batch_size}, bptt {tc.bptt}, {args.epochs} epoch(s) each")
    models = {}
    for side in ("ours", "plain"):
        torch.manual_seed(0)
        m = RecurrentModel(mc).to(device)
        models[side] = (m, make_optimizer(m, tc))
    spent = {"ours": 0.0, "plain": 0.0}
    tokens = {"ours": 0, "plain": 0}
    for epoch in range(args.epochs):
        for side in (("ours", "plain") if epoch % 2 == 0 else ("plain", "ours")):
            m, opt = models[side]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            n = train_lm_epoch(m, opt, data, tc)[1] if side == "ours" else plain_loop(m, opt, data, tc.bptt, tc.clip)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            spent[side] += time.perf_counter() - t0
            tokens[side] += n
            print(f"  epoch {epoch + 1} {side:5s} {time.perf_counter() - t0:7.1f} s", flush=True)
    ours, plain = tokens["ours"] / spent["ours"], tokens["plain"] / spent["plain"]
    print(f"train {args.preset}: ours {ours:,.0f} tok/s, plain loop {plain:,.0f} tok/s, ratio {ours / plain:.3f}")


if __name__ == "__main__":
    main()
