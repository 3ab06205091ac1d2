"""The ablated runs: one layer's units replaced at every step, many unit sets side by side.

A *column* is one run of the model over the same tokens: column 0 is the unablated run, column j > 0 replaces
the units ``units[j]`` of the state (h or c) of one layer by ``values[j]`` after every step, before anything
reads them: the next step of that layer, the layer above and (last layer) the output. The effect therefore
propagates through the recurrence.

All columns read the same tokens, so they are traced as the columns of one batch:

- the layers below the ablated one are the same for every column: they run once, fused (batch 1 for a
  language model), and the ablated layer's input projection is computed once and shared;
- the ablated layer runs step by step (the replacement must happen inside the recurrence, which a fused
  kernel does not allow) with every column in the batch: one [columns, H] x [H, G*H] product per step;
- the layers above run fused on the batch of columns, and the output layer on blocks of rows;
- a language model's stream is cut into chunks of time steps; on a CPU with two threads, the step loop of
  chunk c (all columns, one thread) runs beside the output layer of chunk c - 1 (the other thread), and the
  step loop's thread takes the output layer's remaining blocks when its steps are done (:func:`_beside`).

The step loop is written here, not taken from :mod:`models.trace_cells`: it needs a replacement inside every
step, and that module's loops are tuned for writing states out, not for many columns. It follows torch's
equations (gate order i f g o for the LSTM, r z n for the GRU); the tests recompute it with torch's own
cells.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from models.rnn import RecurrentModel
from models.runtime import run_split, split_parts

__all__ = ["Columns", "lm_column_losses", "classifier_column_probs", "state_means", "TIME_CHUNK", "HEAD_ROWS"]

#: Time steps per chunk of a language model's stream (the state is carried from chunk to chunk).
TIME_CHUNK = 512
#: Rows of the output layer per product: HEAD_ROWS x vocabulary floats (80 MB at 2048 x 10k).
HEAD_ROWS = 2048
#: The CPU step loop cuts its columns into parts of at least this many (one per torch thread).
MIN_PART_COLUMNS = 8
#: The most threads a language model's chunks are pipelined on (each holds a HEAD_ROWS x vocabulary buffer).
MAX_THREADS = 16
_CORES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass(frozen=True)
class Columns:
    """What each column replaces: ``keep`` [K, H] 1 where the unit runs freely, 0 where it is replaced;
    ``fill`` [K, H] the replacement (0 where kept). Column 0 is normally the unablated run (all kept)."""

    layer: int
    state: str
    keep: Tensor
    fill: Tensor

    @classmethod
    def build(cls, layer: int, state: str, hidden: int, units: Sequence[Sequence[int]],
              values: Sequence[np.ndarray | None]) -> Columns:
        """Column 0 unablated, then one column per unit set; ``values[j]`` the [H] replacement (None: zeros)."""
        keep = torch.ones(len(units) + 1, hidden)
        fill = torch.zeros(len(units) + 1, hidden)
        for j, (u, v) in enumerate(zip(units, values), start=1):
            idx = torch.as_tensor(np.asarray(u, dtype=np.int64))
            keep[j, idx] = 0.0
            if v is not None:
                fill[j, idx] = torch.as_tensor(np.asarray(v, dtype=np.float32))[idx]
        return cls(layer, state, keep, fill)

    @property
    def count(self) -> int:
        return int(self.keep.shape[0])


def _fused(model: RecurrentModel, first: int, stop: int) -> nn.Module | None:
    """A fused module running layers first .. stop-1 of ``model`` with copies of their weights (None if empty)."""
    if stop <= first:
        return None
    cfg = model.cfg
    kwargs = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
    inp = cfg.embed_size if first == 0 else cfg.hidden_size
    core = _CORES[cfg.cell](inp, cfg.hidden_size, stop - first, **kwargs).to(model.head.weight.device).eval()
    with torch.no_grad():
        for i in range(stop - first):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(core, f"{name}_l{i}").copy_(getattr(model.rnn, f"{name}_l{first + i}"))
    return core


class _AblatedLayer:
    """One layer stepped with a replacement after every step; state tensors are [rows, columns, H]."""

    def __init__(self, model: RecurrentModel, cols: Columns):
        cfg = model.cfg
        dev = model.head.weight.device
        p = {n: getattr(model.rnn, f"{n}_l{cols.layer}").detach() for n in ("weight_ih", "weight_hh", "bias_ih",
                                                                               "bias_hh")}
        self.cell, self.H, self.which = cfg.cell, cfg.hidden_size, cols.state
        # [columns, H] x [H, G*H] as a product with the transposed view of W_hh [G*H, H]: measured 15% less CPU
        # than with a contiguous copy of its transpose (MKL's kernel for a transposed operand suits this shape).
        self.w_ih, self.w_hh = p["weight_ih"], p["weight_hh"].contiguous()
        # The LSTM's and the RNN's two biases add up; the GRU's hidden bias sits inside r * (W_hn h + b_hn).
        self.b_ih = p["bias_ih"] if cfg.cell == "gru" else p["bias_ih"] + p["bias_hh"]
        self.b_hh = p["bias_hh"]
        self.keep, self.fill = cols.keep.to(dev), cols.fill.to(dev)

    def zero_state(self, rows: int) -> tuple[Tensor, Tensor]:
        z = torch.zeros(rows, self.keep.shape[0], self.H, device=self.keep.device)
        return z, z.clone()

    def run(self, x: Tensor, state: tuple[Tensor, Tensor], record: str = "h", parts: int | None = None
            ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x [T, rows, In] the layer's input (the same for every column).  Returns every step's h (or c, with
        ``record="c"``) [T, rows, K, H] and the final state.

        On a CPU the columns are cut into one part per torch thread, each stepped on one intra-op thread
        (:func:`models.runtime.run_split`): a step is a dozen small ops, and on a loaded 2-core machine each
        parallel op's fork and barrier cost more than the op (measured here: [22, 650] x [650, 2600] took
        1.4 ms on one thread, 15 ms on two).  ``parts``: cut into that many parts instead (1: all columns in this
        thread, as :func:`lm_column_losses` runs it beside the output layer's work)."""
        T, rows = x.shape[:2]
        gi = torch.addmm(self.b_ih, x.reshape(T * rows, -1), self.w_ih.t()).view(T, rows, 1, -1)
        h, c = state
        K = h.shape[1]
        out = torch.empty(T, *h.shape, device=h.device)
        if parts is None:
            parts = split_parts(K // MIN_PART_COLUMNS) if h.device.type == "cpu" else 1
        bounds = [K * i // parts for i in range(parts + 1)]

        def part(i: int) -> tuple[Tensor, Tensor]:
            cols = slice(bounds[i], bounds[i + 1])
            with torch.inference_mode():                                   # grad mode is per thread
                return self._steps(gi, h[:, cols].contiguous(), c[:, cols].contiguous(), self.keep[cols],
                                   self.fill[cols], out[:, :, cols], record)

        finals = run_split(part, parts)
        return out, (torch.cat([f[0] for f in finals], dim=1), torch.cat([f[1] for f in finals], dim=1))

    def _steps(self, gi: Tensor, h: Tensor, c: Tensor, keep: Tensor, fill: Tensor, out: Tensor,
               record: str) -> tuple[Tensor, Tensor]:
        step = {"lstm": self._lstm, "gru": self._gru, "rnn": self._rnn}[self.cell]
        for t in range(gi.shape[0]):
            h, c = step(gi[t], h, c, keep, fill)
            out[t] = c if record == "c" else h
        return h, c

    def _recur(self, h: Tensor) -> Tensor:
        return torch.mm(h.reshape(-1, self.H), self.w_hh.t()).view(*h.shape[:2], -1)

    def _lstm(self, gi: Tensor, h: Tensor, c: Tensor, keep: Tensor, fill: Tensor) -> tuple[Tensor, Tensor]:
        pre = self._recur(h).add_(gi)
        H = self.H
        sig = torch.sigmoid(pre)                                           # i f (g unused) o
        c = sig[..., H:2 * H].mul(c).addcmul_(sig[..., :H], torch.tanh(pre[..., 2 * H:3 * H]))
        if self.which == "c":
            c.mul_(keep).add_(fill)
        h = sig[..., 3 * H:].mul(torch.tanh(c))
        if self.which == "h":
            h.mul_(keep).add_(fill)
        return h, c

    def _gru(self, gi: Tensor, h: Tensor, c: Tensor, keep: Tensor, fill: Tensor) -> tuple[Tensor, Tensor]:
        gh = self._recur(h).add_(self.b_hh)
        H = self.H
        r = torch.sigmoid(gi[..., :H] + gh[..., :H])
        z = torch.sigmoid(gi[..., H:2 * H] + gh[..., H:2 * H])
        n = torch.tanh(gi[..., 2 * H:] + r * gh[..., 2 * H:])
        return (n + z * (h - n)).mul_(keep).add_(fill), c                # (1 - z) n + z h

    def _rnn(self, gi: Tensor, h: Tensor, c: Tensor, keep: Tensor, fill: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(self._recur(h).add_(gi)).mul_(keep).add_(fill), c


class _Head:
    """-log p(y) from the output layer, HEAD_ROWS rows of logits at a time, each thread in one reused buffer.

    The log-sum-exp is taken in place (max, subtract, exp, sum): what ``F.cross_entropy`` computes, without
    its two fresh [rows, V] tensors per block.  Fresh tensors of 40-80 MB are mapped and faulted in anew every
    time (measured: 44 M page faults and 30% of the CPU time in the kernel for the demo LSTM's test split)."""

    def __init__(self, model: RecurrentModel):
        self.w_t, self.b = model.head.weight.detach().t(), model.head.bias.detach()
        self.bufs: dict[int, Tensor] = {}                    # one per thread slot (see _HeadWork.drain)

    def block(self, flat: Tensor, target: Tensor, out: Tensor, a: int, rows: int, slot: int = 0) -> None:
        """out[a:a+rows] = the losses of rows a .. a+rows-1 of ``flat`` [rows, H] with ``target`` [rows, 1]."""
        buf = self.bufs.get(slot)
        if buf is None:
            buf = self.bufs[slot] = torch.empty(HEAD_ROWS, self.b.numel(), device=self.b.device)
        z = torch.addmm(self.b, flat[a:a + rows], self.w_t, out=buf[:rows])
        picked = z.gather(1, target[a:a + rows])
        top = z.amax(dim=1, keepdim=True)
        total = z.sub_(top).exp_().sum(dim=1, keepdim=True)
        out[a:a + rows] = (total.log_().add_(top).sub_(picked)).double().view(-1)

    def losses(self, h: Tensor, y: Tensor) -> Tensor:
        """h [T, K, H], targets y [T]: float64 [T, K]."""
        work = _HeadWork(self, h, y)
        work.drain(0)
        return work.result()


class _HeadWork:
    """One chunk's output-layer rows as HEAD_ROWS blocks that threads take one at a time: the step loop's thread
    takes its share once its own work is done, so neither thread waits for the other."""

    def __init__(self, head: _Head, h: Tensor, y: Tensor):
        T, K, H = h.shape
        self.head, self.shape = head, (T, K)
        self.flat, self.target = h.reshape(T * K, H), y[:, None].expand(T, K).reshape(-1, 1)
        self.out = torch.empty(T * K, dtype=torch.float64, device=h.device)
        self.next, self.lock = 0, threading.Lock()

    def drain(self, slot: int) -> None:
        """Compute blocks until none is left (``slot``: which of the head's buffers this thread writes)."""
        total = self.out.numel()
        with torch.inference_mode():                                       # grad mode is per thread
            while True:
                with self.lock:
                    a, self.next = self.next, self.next + HEAD_ROWS
                if a >= total:
                    return
                self.head.block(self.flat, self.target, self.out, a, min(HEAD_ROWS, total - a), slot)

    def result(self) -> Tensor:
        return self.out.view(*self.shape)


def _beside(layer: _AblatedLayer, x: Tensor, state: tuple[Tensor, Tensor], work: _HeadWork | None,
            threads: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Step ``layer`` over chunk ``x`` and finish the previous chunk's output layer ``work``.

    With ``threads`` > 1 (a CPU with that many torch threads), in as many threads of one intra-op thread each:
    the step loop with all columns in one part (a [K, H] x [H, G*H] product per step: measured 36% less CPU
    than two parts of K/2 columns) in the first, the output layer's blocks in the others, which the first
    joins when its steps are done."""
    if threads < 2:
        out = layer.run(x, state)
        if work is not None:
            work.drain(0)
        return out

    def part(i: int):
        with torch.inference_mode():                                       # grad mode is per thread
            out = layer.run(x, state, parts=1) if i == 0 else None
            if work is not None:
                work.drain(i)
            return out

    return run_split(part, threads)[0]


@torch.inference_mode()
def lm_column_losses(model: RecurrentModel, stream: Tensor, cols: Columns, *, chunk: int = TIME_CHUNK,
                     on_progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Loss of every token but the first of ``stream`` [N] read as one stream from zero state, in each column.

    float64 [N - 1, K]; row t - 1 is the loss of token t (as :func:`analytics.losses.lm_token_losses`).
    """
    model.eval()
    dev = model.head.weight.device
    below, above = _fused(model, 0, cols.layer), _fused(model, cols.layer + 1, model.cfg.layers)
    layer, head = _AblatedLayer(model, cols), _Head(model)
    n = int(stream.numel()) - 1
    out = np.zeros((max(n, 0), cols.count))
    s_below = s_above = None
    s_mid = layer.zero_state(1)
    threads = split_parts(MAX_THREADS) if dev.type == "cpu" else 1
    pending: tuple[_HeadWork, int, int] | None = None          # a chunk whose output layer is still to run

    def finish(done: tuple[_HeadWork, int, int]) -> None:
        work, a, b = done
        out[a:b] = work.result().cpu().numpy()
        if on_progress is not None:
            on_progress(b / n)

    for start in range(0, max(n, 0), chunk):
        stop = min(start + chunk, n)
        x = model.embed(stream[start:stop].to(dev))[:, None]                # [T, 1, E]
        if below is not None:
            x, s_below = below(x, s_below)
        h, s_mid = _beside(layer, x, s_mid, pending[0] if pending else None, threads)   # h [T, 1, K, H]
        if pending is not None:
            finish(pending)
        h = h[:, 0]
        if above is not None:
            h, s_above = above(h, s_above)
        pending = (_HeadWork(head, h, stream[start + 1:stop + 1].to(dev)), start, stop)
    if pending is not None:
        run_split(lambda i: pending[0].drain(i), threads)
        finish(pending)
    return out


@torch.inference_mode()
def classifier_column_probs(model: RecurrentModel, docs: Sequence[Sequence[int]], cols: Columns, *,
                            batch_size: int = 16) -> np.ndarray:
    """Class probabilities of every document (each from zero state) in each column: float64 [D, K, C]."""
    model.eval()
    dev = model.head.weight.device
    below, above = _fused(model, 0, cols.layer), _fused(model, cols.layer + 1, model.cfg.layers)
    layer = _AblatedLayer(model, cols)
    K = cols.count
    probs = np.zeros((len(docs), K, model.cfg.num_classes))
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    for g in (order[i:i + batch_size] for i in range(0, len(order), batch_size)):
        lengths = torch.tensor([max(1, len(docs[i])) for i in g], device=dev)
        x = torch.zeros(int(lengths.max()), len(g), dtype=torch.long)
        for j, i in enumerate(g):                                           # padding after the end: never read
            x[: len(docs[i]), j] = torch.as_tensor(docs[i], dtype=torch.long)
        e = model.embed(x.to(dev))
        if below is not None:
            e, _ = below(e)
        h, _ = layer.run(e, layer.zero_state(len(g)))                      # [T, g, K, H]
        T = h.shape[0]
        h = h.reshape(T, len(g) * K, -1)
        if above is not None:
            h, _ = above(h)
        last = h.view(T, len(g), K, -1)[lengths - 1, torch.arange(len(g), device=dev)]    # [g, K, H]
        probs[g] = torch.softmax(model.head(last).float(), dim=-1).double().cpu().numpy()
    return probs


@torch.inference_mode()
def state_means(model: RecurrentModel, layer: int, state: str, *, stream: Tensor | None = None,
                docs: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Mean of each unit of (layer, state) over the unablated run: every token of ``stream`` read as one stream
    from zero state, or every token of every document of ``docs``, each from zero state.  float64 [H]."""
    model.eval()
    dev = model.head.weight.device
    below = _fused(model, 0, layer)
    probe = _AblatedLayer(model, Columns.build(layer, state, model.cfg.hidden_size, [], []))
    total = torch.zeros(model.cfg.hidden_size, dtype=torch.float64, device=dev)
    continuous = stream is not None
    pieces = ([stream[a:a + TIME_CHUNK] for a in range(0, int(stream.numel()), TIME_CHUNK)] if continuous
              else [torch.as_tensor(d, dtype=torch.long) for d in (docs or []) if len(d)])
    s_below, s_mid, count = None, probe.zero_state(1), 0
    for piece in pieces:
        x = model.embed(piece.to(dev))[:, None]
        if below is not None:
            x, s_below = below(x, s_below if continuous else None)
        values, s_mid = probe.run(x, s_mid if continuous else probe.zero_state(1), record=state)
        total += values.double().sum(dim=(0, 1, 2))
        count += int(piece.numel())
    return (total / max(count, 1)).cpu().numpy()
