"""Stored word responses against the continuous stream, pair by pair, and what the exact trace costs.

    PYTHONPATH=. .venv/bin/python bench/bench_exact.py [--store var/store] [--models demo-lstm,demo-gru,demo-rnn]
    PYTHONPATH=. .venv/bin/python bench/bench_exact.py --cost [--hidden 650] [--tokens 65536] [--threads 1]

Accuracy.  For every language model of the store, the reference walks the
analysed split as ONE sequence from zero state through torch's own cells
(``nn.LSTMCell``/``nn.GRUCell``/``nn.RNNCell`` built from the model's weights,
one token at a time, float32), with Δs_t = s_t − s_(t−1) for h and c and the
activations for the gates (recomputed from the reference's h_(t−1)).  Per
(layer, state) it prints the share of (word, unit) pairs whose stored value is
off: mean and std by more than 1e-4 + 1e-3·|reference|, a quantile (from the
same systematic sample, rounded to float16 as stored) by more than one
float16 step + 1e-4; and the largest |Δmean|.  The target (issue 23): at most
0.1% of pairs off, words of every n.

Cost (``--cost``).  A freshly initialised 2-layer LSTM (``--hidden``) over a
Zipf-like stream: the exact trace (analytics.lm_trace.trace_lm: warm-up, first
pass, corrections) against the trace as it was before the corrections
(warm-up and first pass only), both with statistics of every state, best of
``--repeats`` alternating runs; prints the ratio.  Times are the process's CPU
time, which a shared machine's load disturbs far less than wall time (at one
thread they are the same on an idle machine).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from analytics import store  # noqa: E402
from analytics.lm_trace import lm_chunks, pieces, trace_lm, warm_state  # noqa: E402
from analytics.quantiles import systematic_keep  # noqa: E402
from analytics.responses import ResponseAccumulator  # noqa: E402
from models.buffers import Workspace  # noqa: E402
from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.corpora import load_corpus  # noqa: E402
from models.rnn import RecurrentModel  # noqa: E402
from models.train import lm_stream  # noqa: E402

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


def _cell(model: RecurrentModel, layer: int) -> nn.Module:
    cfg = model.cfg
    inp = cfg.embed_size if layer == 0 else cfg.hidden_size
    cell = _CELLS[cfg.cell](inp, cfg.hidden_size, **({"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}))
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.rnn, f"{name}_l{layer}"))
    return cell


def _gates(model: RecurrentModel, layer: int, x: torch.Tensor, h_prev: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every step's gate activations from the layer input x [N, E] and h_(t−1) [N, H] (torch's formulas)."""
    g = lambda n: getattr(model.rnn, f"{n}_l{layer}")  # noqa: E731
    gi, gh = x @ g("weight_ih").t() + g("bias_ih"), h_prev @ g("weight_hh").t() + g("bias_hh")
    if model.cfg.cell == "lstm":
        i, f, c, o = (gi + gh).chunk(4, dim=1)
        return {"i": i.sigmoid(), "f": f.sigmoid(), "g": c.tanh(), "o": o.sigmoid()}
    (ri, zi, ni), (rh, zh, nh) = gi.chunk(3, dim=1), gh.chunk(3, dim=1)
    r = (ri + rh).sigmoid()
    return {"z": (zi + zh).sigmoid(), "r": r, "n": (ni + r * nh).tanh()}


@torch.no_grad()
def reference(model: RecurrentModel, ids: torch.Tensor) -> dict[tuple[int, str], np.ndarray]:
    """{(layer, state): [N, H] float32}: Δh, Δc and the gates of the split [N] as one stream from zero."""
    out = {}
    x = model.embed(ids)                                                    # [N, E]
    N, H = ids.numel(), model.cfg.hidden_size
    for layer in range(model.cfg.layers):
        cell, lstm = _cell(model, layer), model.cfg.cell == "lstm"
        hs, cs = torch.zeros(N + 1, H), torch.zeros(N + 1, H)
        h, c = torch.zeros(1, H), torch.zeros(1, H)
        for t in range(N):
            if lstm:
                h, c = cell(x[t:t + 1], (h, c))
                cs[t + 1] = c[0]
            else:
                h = cell(x[t:t + 1], h)
            hs[t + 1] = h[0]
        out[(layer, "h")] = (hs[1:] - hs[:-1]).numpy()
        if lstm:
            out[(layer, "c")] = (cs[1:] - cs[:-1]).numpy()
        if model.cfg.cell != "rnn":
            out.update({(layer, k): v.numpy() for k, v in _gates(model, layer, x, hs[:-1]).items()})
        x = hs[1:]
    return out


def _word_stats(ids: np.ndarray, values: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Per word seen (ascending id): mean, std (ddof 1, 0 at n = 1) in float64, quantiles of the kept float16."""
    order = np.argsort(ids, kind="stable")
    words, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
    v = values[order].astype(np.float64)
    s1 = np.add.reduceat(v, starts)
    mean = s1 / counts[:, None]
    m2 = np.add.reduceat((v - np.repeat(mean, counts, axis=0)) ** 2, starts)
    std = np.sqrt(m2 / np.maximum(counts - 1, 1)[:, None])
    half = values[order].astype(np.float16).astype(np.float64)
    kept = keep[order]
    q = np.empty((len(QUANTILES), len(words), values.shape[1]))
    for w, (s, n) in enumerate(zip(starts, counts)):
        q[:, w] = np.quantile(half[s:s + n][kept[s:s + n]], QUANTILES, axis=0)
    return {"word_id": words, "mean": mean, "std": std, "q": q}


def compare(store_root: str, model_id: str) -> None:
    ckpt = read_checkpoint(find_checkpoint(store_root, model_id))
    model, vocab = model_from_checkpoint(ckpt)
    con = store.connect(store_root)
    row = store.query(con, "SELECT params, analysis_split FROM models WHERE model_id = ?", [model_id]).iloc[0]
    opts = json.loads(row["params"]).get("analysis", {})
    corpus = load_corpus(ckpt.get("train_config", {}).get("corpus") or ckpt["corpus"])
    ids = lm_stream(corpus, vocab, row["analysis_split"], int(opts.get("max_tokens", 0)))
    keep = systematic_keep(ids.numpy(), int(opts.get("quantile_cap", 1000)))
    t0 = time.perf_counter()
    ref = reference(model.eval(), ids)
    print(f"{model_id}: {ids.numel():,} tokens, reference in {time.perf_counter() - t0:.0f} s")
    print(f"{'layer':>5s} {'state':>5s} {'pairs':>9s} {'mean off':>9s} {'std off':>8s} {'q off':>7s} "
          f"{'max |dmean|':>11s}")
    for (layer, state), values in ref.items():
        r = _word_stats(ids.numpy(), values, keep)
        df = store.query(con, "SELECT word_id, unit, mean, std, q10, q25, q50, q75, q90 FROM word_responses "
                              "WHERE model_id = ? AND layer = ? AND state = ? ORDER BY word_id, unit",
                         [model_id, layer, state])
        if df.empty:
            continue
        H = values.shape[1]
        assert np.array_equal(df["word_id"].to_numpy()[::H], r["word_id"]), "stored words differ from the split's"
        mean, std = (df[c].to_numpy().reshape(-1, H) for c in ("mean", "std"))
        q = np.stack([df[c].to_numpy().reshape(-1, H) for c in ("q10", "q25", "q50", "q75", "q90")])
        off_m = np.abs(mean - r["mean"]) > 1e-4 + 1e-3 * np.abs(r["mean"])
        off_s = np.abs(std - r["std"]) > 1e-4 + 1e-3 * np.abs(r["std"])
        step = np.spacing(np.abs(r["q"]).astype(np.float16)).astype(np.float64)
        off_q = (np.abs(q - r["q"]) > step + 1e-4).any(axis=0)
        print(f"{layer:5d} {state:>5s} {mean.size:9,d} {off_m.mean():9.3%} {off_s.mean():8.3%} {off_q.mean():7.3%} "
              f"{np.abs(mean - r['mean']).max():11.2e}", flush=True)


def cost(args) -> None:
    """Exact trace vs warm-up + first pass only, on a fresh 2-layer LSTM."""
    torch.manual_seed(0)
    V, H = 10_000, args.hidden
    model = RecurrentModel(ModelConfig("lm", "lstm", 2, H, H, 0.0, V)).eval()
    probs = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    stream = torch.multinomial(probs / probs.sum(), args.tokens, replacement=True)
    keys = model.state_keys()
    opts = SimpleNamespace(batch_size=64, warmup=200, chunk_steps=256, quantile_cap=1000)
    best = {"before": float("inf"), "exact": float("inf")}
    for _ in range(args.repeats):
        for name in best:
            spill = tempfile.mkdtemp()
            acc = ResponseAccumulator(V, len(keys) * H, spill_dir=spill)
            ws = Workspace()
            model.clear_trace_cache()
            t0 = time.process_time()
            with torch.no_grad():
                if name == "exact":
                    trace_lm(model, stream, opts, keys, ws, acc, lambda f: None)
                else:
                    B, n = pieces(stream.numel(), opts.batch_size, opts.warmup)
                    start = warm_state(model, stream, B, n, opts.warmup, ws, True)
                    data = stream[:B * n].view(B, n).t().contiguous()
                    keep = torch.from_numpy(systematic_keep(stream.numpy(), opts.quantile_cap))[:B * n].view(B, n).t()
                    pos, t = torch.arange(B * n).view(B, n).t(), 0            # the same statistics work
                    for x, v in lm_chunks(model, data, opts.chunk_steps, keys, ws, start, True):
                        acc.update(x.reshape(-1), v.view(-1, v.shape[-1]), keep=keep[t:t + len(x)].reshape(-1),
                                   positions=pos[t:t + len(x)].reshape(-1))
                        t += len(x)
            best[name] = min(best[name], time.process_time() - t0)
            acc.close()
            shutil.rmtree(spill, ignore_errors=True)
    print(f"2x{H} LSTM, {args.tokens:,} tokens, {torch.get_num_threads()} thread(s), CPU time: "
          f"before {best['before']:.2f} s, exact {best['exact']:.2f} s, ratio {best['exact'] / best['before']:.3f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=os.environ.get("RNNVIS_STORE", "var/store"))
    ap.add_argument("--models", default="", help="comma-separated model ids (default: every language model)")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--hidden", type=int, default=650)
    ap.add_argument("--tokens", type=int, default=65_536)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.cost:
        cost(args)
        return
    con = store.connect(args.store)
    ids = args.models.split(",") if args.models else list(
        store.query(con, "SELECT model_id FROM models WHERE task = 'lm' ORDER BY model_id")["model_id"])
    for model_id in ids:
        compare(args.store, model_id)


if __name__ == "__main__":
    main()
