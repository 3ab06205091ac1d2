"""Training throughput: our trainer against a plain PyTorch loop, same fused module, batch and bptt.

    .venv/bin/python bench/bench_train.py [--steps 30] [--shapes small,medium]

Both run the same number of truncated-BPTT steps of the same model on the same
Brown slice, alternating (ours, plain, ours, plain, ...) so load on a shared
machine hits both alike; the ratio is ours / plain tokens per second.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from models.config import ModelConfig, TrainConfig, get_preset
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.text import Vocab
from models.train import batchify, lm_stream, make_optimizer, train_lm_epoch


def plain_loop(model, opt, data, bptt, clip):
    """The reference: pytorch/examples word_language_model's loop, nothing else."""
    model.train()
    hidden = model.init_state(data.size(1))
    tokens = 0
    for i in range(0, data.size(0) - 1, bptt):
        seq = min(bptt, data.size(0) - 1 - i)
        x, y = data[i:i + seq], data[i + 1:i + 1 + seq]
        hidden = tuple(h.detach() for h in hidden)
        out, hidden = model.rnn(model.drop(model.embed(x)), hidden)
        loss = F.cross_entropy(model.head(model.drop(out)).view(-1, model.cfg.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        tokens += y.numel()
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", default="lstm-small,lstm-medium")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_corpus("brown")
    vocab = Vocab.build(corpus.tokens("train"), 10_000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    print(f"{'shape':12s} {'ours tok/s':>11s} {'plain tok/s':>12s} {'ratio':>6s}")
    for name in args.shapes.split(","):
        p = get_preset(name)
        tc: TrainConfig = p.train
        mc: ModelConfig = p.model
        mc.vocab_size = len(vocab)
        n = tc.batch_size * (tc.bptt * args.steps + 1)
        data = batchify(lm_stream(corpus, vocab, "train", n), tc.batch_size)
        ours_t, plain_t, toks = 0.0, 0.0, 0
        def run(ours: bool) -> tuple[float, int]:
            torch.manual_seed(0)
            m = RecurrentModel(mc)
            o = make_optimizer(m, tc)
            t0 = time.perf_counter()
            tokens = train_lm_epoch(m, o, data, tc)[1] if ours else plain_loop(m, o, data, tc.bptt, tc.clip)
            return time.perf_counter() - t0, tokens

        for r in range(args.repeats + 1):                       # first round warms up, not counted
            if r % 2:                                           # alternate who goes first
                (t_ours, tokens), (t_plain, _) = run(True), run(False)
            else:
                (t_plain, _), (t_ours, tokens) = run(False), run(True)
            if r:
                ours_t += t_ours
                plain_t += t_plain
                toks += tokens
        print(f"{name:12s} {toks / ours_t:11,.0f} {toks / plain_t:12,.0f} {plain_t / ours_t:6.3f}")


if __name__ == "__main__":
    main()
