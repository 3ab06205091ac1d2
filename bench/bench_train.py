"""Training: our trainer against a plain PyTorch loop, for speed and for how fast it learns.

    .venv/bin/python bench/bench_train.py [--steps 30] [--shapes lstm-small,lstm-medium]
    .venv/bin/python bench/bench_train.py --quality [--presets demo-lstm,lstm-small] [--epochs 1]

Speed: both run the same number of truncated-BPTT steps of the same model on
the same Brown slice, alternating (ours, plain, ours, plain, ...) so load on a
shared machine hits both alike; the ratio is ours / plain tokens per second.

Quality (``--quality``): each language-model preset, trained by ``rnnvis
train``'s code path for ``--epochs`` epochs on a Brown training slice, against
the reference recipe written out here as a plain loop (pytorch/examples
``word_language_model``: its own model class, SGD lr 20 on the token-mean loss,
clip 0.25, lr ÷4 when validation stops improving) with the same cell, sizes,
dropout, vocabulary and data.  Both are scored on the same validation stream;
the ratio is ours / reference validation perplexity (target: <= 1.05).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig, TrainConfig, apply_overrides, get_preset
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.text import Vocab
from models.train import batchify, lm_stream, make_optimizer, train_lm_epoch, train_model


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


class ReferenceLM(nn.Module):
    """pytorch/examples word_language_model's RNNModel (untied), written out again."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, embed)
        kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = kind(embed, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.Linear(hidden, vocab)
        self.cell, self.layers, self.hidden = cell, layers, hidden
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch: int):
        z = torch.zeros(self.layers, batch, self.hidden)
        return (z, z.clone()) if self.cell == "lstm" else z

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)      # [T, B, H]
        return self.decoder(self.drop(out)), hidden                     # [T, B, V]


def _repackage(h):
    return tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()


@torch.no_grad()
def reference_eval(model: ReferenceLM, data: torch.Tensor, bptt: int = 35) -> float:
    model.eval()
    hidden, total = model.init_hidden(data.size(1)), 0.0
    for i in range(0, data.size(0) - 1, bptt):
        seq = min(bptt, data.size(0) - 1 - i)
        out, hidden = model(data[i:i + seq], hidden)
        total += F.cross_entropy(out.view(-1, out.size(-1)), data[i + 1:i + 1 + seq].reshape(-1),
                                 reduction="sum").item()
    return math.exp(total / ((data.size(0) - 1) * data.size(1)))


def reference_train(mc: ModelConfig, train: torch.Tensor, valid: torch.Tensor, epochs: int, seed: int,
                    lr: float = 20.0) -> float:
    """The recipe of pytorch/examples main.py (its lr 20 unless told); returns the best validation perplexity."""
    torch.manual_seed(seed)
    model = ReferenceLM(mc.cell, mc.vocab_size, mc.embed_size, mc.hidden_size, mc.layers, mc.dropout)
    best = math.inf
    for _ in range(epochs):
        model.train()
        hidden = model.init_hidden(train.size(1))
        for i in range(0, train.size(0) - 1, 35):
            seq = min(35, train.size(0) - 1 - i)
            hidden = _repackage(hidden)
            model.zero_grad()
            out, hidden = model(train[i:i + seq], hidden)
            loss = F.cross_entropy(out.view(-1, out.size(-1)), train[i + 1:i + 1 + seq].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
        ppl = reference_eval(model, valid)
        if ppl < best:
            best = ppl
        else:
            lr /= 4.0
    return best


def _head(seqs: list[list[str]], tokens: int) -> list[list[str]]:
    """The first sequences holding ``tokens`` tokens (all when 0)."""
    if not tokens:
        return seqs
    out, n = [], 0
    for s in seqs:
        if n >= tokens:
            break
        out.append(s)
        n += len(s)
    return out


def quality(args) -> None:
    full = load_corpus("brown")
    # The same validation (and test) text for both sides; a slice keeps big models' evaluation short.
    corpus = dataclasses.replace(full, splits={"train": full.splits["train"],
                                               "valid": _head(full.splits["valid"], args.valid_tokens),
                                               "test": _head(full.splits["test"], args.valid_tokens)})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.epochs} epoch(s); reference lr "
          f"{args.ref_lr:g}; validation "
          f"perplexity on Brown's validation split ({corpus.num_tokens('valid'):,} tokens)")
    print(f"{'preset':12s} {'train tokens':>12s} {'seed':>5s} {'ours':>8s} {'reference':>10s} {'ratio':>6s}")
    for name in args.presets.split(","):
        ours_all, ref_all = [], []
        seeds = ([int(x) for x in args.seeds.split(",") if x] if "," in args.seeds
                 else range(1, int(args.seeds) + 1))
        for seed in seeds:
            p = get_preset(name)
            tokens = args.tokens or (300_000 if p.model.hidden_size <= 256 else 60_000
                                     if p.model.hidden_size <= 700 else 20_000)
            apply_overrides(p.model, p.train, {"epochs": args.epochs, "max_train_tokens": tokens, "patience": 0,
                                               "seed": seed})
            with tempfile.TemporaryDirectory() as tmp:
                res = train_model("bench", p.model, p.train, tmp, corpus=corpus, show_progress=False,
                                  threads=args.threads or None)
            ours = min(m["perplexity"] for m in res.metrics if m["split"] == "valid")
            vocab = Vocab.build(corpus.tokens("train"), p.train.vocab_size)
            mc = dataclasses.replace(p.model, vocab_size=len(vocab))
            train = batchify(lm_stream(corpus, vocab, "train", tokens), p.train.batch_size)
            valid = batchify(lm_stream(corpus, vocab, "valid"), 10)
            ref = reference_train(mc, train, valid, args.epochs, seed, lr=args.ref_lr)
            ours_all.append(ours)
            ref_all.append(ref)
            print(f"{name:12s} {tokens:12,d} {seed:5d} {ours:8.1f} {ref:10.1f} {ours / ref:6.3f}", flush=True)
        # One epoch at lr 20 is noisy from seed to seed (demo-gru, 100k tokens: 274-343 for either side):
        # compare the means over seeds.
        o, r = sum(ours_all) / len(ours_all), sum(ref_all) / len(ref_all)
        print(f"{name:12s} {'mean':>12s} {len(ours_all):5d} {o:8.1f} {r:10.1f} {o / r:6.3f}  "
              f"(ours {min(ours_all):.1f}-{max(ours_all):.1f}, reference {min(ref_all):.1f}-{max(ref_all):.1f})",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", action="store_true", help="compare validation perplexity with the reference recipe")
    ap.add_argument("--presets", default="demo-lstm,demo-gru,demo-rnn,lstm-small,small,lstm-medium,medium,"
                                          "gru-medium,rnn-medium,lstm-large,large")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seeds", default="3", help="N (seeds 1..N) or a list such as 4,5, for both sides; the ratio "
                                                 "is of the means")
    ap.add_argument("--valid-tokens", type=int, default=30_000, help="validation tokens (0 = the whole split)")
    ap.add_argument("--tokens", type=int, default=0,
                    help="training tokens (default: 300k for hidden <= 256, 60k up to 700, 20k above)")
    ap.add_argument("--ref-lr", type=float, default=20.0,
                    help="the reference's learning rate (the recipe's 20; a vanilla RNN needs 5 not to diverge)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", default="lstm-small,lstm-medium")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quality:
        return quality(args)
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
