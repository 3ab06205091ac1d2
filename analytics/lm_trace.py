"""A language model's split traced as one continuous stream from zero state, exactly, in parallel pieces.

The statistics of a language model are those of its split read as ONE stream
from zero state (h_(-1) = c_(-1) = 0; Δh_t = h_t − h_(t−1) at every token,
every layer).  Reading it one token at a time is slow, so the split is cut
into B pieces of n tokens, traced side by side, and made exact in two steps:

1. **First pass.**  Piece 0 starts from zero state, as the stream does; piece
   b > 0 from the state reached by reading the ``warmup`` tokens before it
   from zero (one states-only trace of [warmup, B]).  Every row goes into the
   statistics.  This start is close to the stream's state there, but not
   equal: a unit that keeps its state for long (the demo LSTM's second layer,
   the demo GRU) remembers the difference for 1,000 tokens and more, longer
   than a piece (measured: 16% of the demo LSTM's layer-1 (word, unit) pairs
   off by more than 1e-4 + 1e-3·|mean| after a 200-token warm-up).
2. **Corrections.**  The true start of piece b is the end state of piece b−1.
   Where the two differ (beyond ``MERGE_ATOL`` + ``MERGE_RTOL``·|state|, all
   layers, h and c), piece b is traced again from both its old and its true
   start, side by side, window by window (``MERGE_STEPS`` tokens): each window's
   old rows are retracted from the statistics
   (:meth:`analytics.responses.ResponseAccumulator.retract`) and the true
   rows added at the same text positions (which also replaces them in the
   quantile sample and the stored token states), until the two trajectories
   agree to that tolerance in every layer.  From there on the first pass's
   rows are the stream's, to that tolerance, and so is its end state.  A piece
   that never agrees is corrected to its end, and its new end state then
   corrects piece b+1 in the next round.  After ``PARALLEL_ROUNDS`` parallel
   rounds the pieces still to correct are done one after the other, in text
   order, so the scheme ends with every piece started from its predecessor's
   true end state, whatever the model's memory.

Cost: a piece whose warm-up start already agrees costs nothing more; one that
does not costs two traces (old and true) of the tokens until they agree.
Measured in CPU time (``bench/bench_exact.py``, docs/exactness.md): 1.02x the
warm-up-only trace for a freshly initialised 2x650 LSTM, whose warmed-up starts
already agree; 1.5-2.0x for the demo GRU and 2.1-2.4x for the demo LSTM, whose
second layer takes 500-1,600 tokens to forget a start.  Chaotic dynamics (never agreeing) fall
back to the sequential sweep: exact, at the cost of the stream traced twice.

The tail that does not fill a piece is traced last, as the continuation of the
last piece's (corrected) end state: every token counts.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from models.buffers import Workspace
from models.rnn import RecurrentModel, State

from .quantiles import systematic_keep
from .responses import ResponseAccumulator
from .token_states import TokenStateCollector

log = logging.getLogger(__name__)

#: Two states agree when |a − b| <= MERGE_ATOL + MERGE_RTOL·|b| in every unit of every layer (h and c): the
#: rows after that point differ by about as much, 10x below the statistics' 1e-4 + 1e-3·|mean| target, and
#: well above the ~1e-7 by which the same trajectory traced in another batch differs.
MERGE_ATOL = 1e-5
MERGE_RTOL = 1e-5
#: Tokens per window of the corrections: where the trajectories are compared.
MERGE_STEPS = 64
#: Rounds of corrections run for all pieces at once before the rest go one piece after the other.
PARALLEL_ROUNDS = 2


def use_input_table(model: RecurrentModel, tokens: int) -> bool:
    """Look the first layer's input projections up per word (see RecurrentModel.trace_packed)?

    Yes when the trace covers more tokens than the vocabulary has words, so the
    [V, G*H] table costs less than the per-chunk products, and it fits in 1 GiB.
    """
    cfg = model.cfg
    gates = {"lstm": 4, "gru": 3}.get(cfg.cell, 0)
    return bool(gates) and tokens >= cfg.vocab_size and cfg.vocab_size * gates * cfg.hidden_size * 4 <= 1 << 30


def lm_chunks(model: RecurrentModel, data: torch.Tensor, chunk: int, keys: list[tuple[int, str]],
              ws: Workspace, state: State | None = None,
              input_table: bool | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Trace a batchified stream [N, B] chunk by chunk from ``state`` (zero if None), carrying the state.

    Yields (ids [T, B], values [T, B, len(keys) * H]) with Δh for h and c, the
    activations for gates; ``values`` is reused by the next chunk.  Returns
    (as the generator's value) the state after the last step.
    """
    table = use_input_table(model, data.numel()) if input_table is None else input_table
    for i in range(0, data.size(0), chunk):
        x = data[i:i + chunk]
        packed = model.trace_packed(x, state, keys=keys, deltas=True, workspace=ws, input_table=table)
        yield x, packed.values
        state = packed.state
    return state


def pieces(total: int, batch_size: int, warmup: int) -> tuple[int, int]:
    """(B, n): B parallel pieces of n tokens each, n >= max(2, warmup) unless B == 1.

    The B * n tokens traced in parallel leave a tail of total − B·n < B tokens.
    """
    B = max(1, min(batch_size, total // max(2, warmup)))
    return B, total // B


def _states(state: State) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _pack(parts: tuple[torch.Tensor, ...]) -> State:
    return parts if len(parts) == 2 else parts[0]


def _columns(state: State, idx: torch.Tensor) -> State:
    """The pieces ``idx`` of a [L, B, H] state."""
    return _pack(tuple(s[:, idx.to(s.device)] for s in _states(state)))


def _put_columns(state: State, idx: torch.Tensor, value: State) -> None:
    for s, v in zip(_states(state), _states(value)):
        s[:, idx.to(s.device)] = v


def _agree(a: State, b: State) -> torch.Tensor:
    """[B] bool: piece by piece, whether the two states agree in every layer (see MERGE_ATOL)."""
    ok = [((x - y).abs() <= MERGE_ATOL + MERGE_RTOL * y.abs()).all(dim=2).all(dim=0) for x, y in
          zip(_states(a), _states(b))]
    return torch.stack(ok).all(dim=0).cpu()


def warm_state(model: RecurrentModel, stream: torch.Tensor, B: int, n: int, warmup: int,
                ws: Workspace, table: bool) -> State:
    """The first pass's start of each piece b (tokens b·n ..): zero for piece 0, else the state after
    reading stream[b·n − warmup : b·n] from zero (zero for all when there is nothing to warm)."""
    w = min(warmup, n)
    if B == 1 or w == 0:
        return model.init_state(B)
    pos = torch.arange(B) * n                                               # [B] piece starts
    idx = (pos[None, :] - w + torch.arange(w)[:, None]).clamp_(min=0)     # [w, B]; piece 0's is reset below
    keys = [(model.cfg.layers - 1, "h")]                                    # only the final state is needed
    state = model.trace_packed(stream[idx], keys=keys, workspace=ws, input_table=table).state
    for s in _states(state):
        s[:, 0] = 0                                                         # [L, B, H]: piece 0 from zero
    return state


@dataclass
class _Run:
    """What the passes over one split share."""

    model: RecurrentModel
    data: torch.Tensor                   # [n, B] ids, column b = piece b
    keep: torch.Tensor                   # [n, B] bool: the quantile sample
    keys: list[tuple[int, str]]
    ws: Workspace
    acc: ResponseAccumulator
    table: bool
    collector: TokenStateCollector | None     # what else takes the chunks (token states, top contexts)
    retraced: int = 0                    # tokens traced again by the corrections (each twice: old and new)

    @property
    def n(self) -> int:
        return self.data.shape[0]

    def positions(self, idx: torch.Tensor, t: int, T: int) -> torch.Tensor:
        """[T * len(idx)] text positions of steps t .. t+T of pieces idx, in [T, p] row order."""
        return (idx[None, :] * self.n + torch.arange(t, t + T)[:, None]).reshape(-1)


def _first_pass(run: _Run, start: State, chunk: int, progress: Callable[[float], None]) -> State:
    """Every piece from ``start``, every row into the statistics; returns the end state [L, B, H]."""
    chunks, done = lm_chunks(run.model, run.data, chunk, run.keys, run.ws, start, run.table), 0
    every = torch.arange(run.data.shape[1])
    while True:
        try:
            x, values = next(chunks)
        except StopIteration as stop:
            return stop.value
        run.acc.update(x.reshape(-1), values.view(-1, values.shape[-1]), keep=run.keep[done:done + len(x)].reshape(-1),
                       positions=run.positions(every, done, len(x)))
        if run.collector is not None:
            run.collector.add(values, done)
        done += len(x)
        progress(done / run.n)


def _retrace(run: _Run, idx: torch.Tensor, old: State, new: State) -> tuple[torch.Tensor, State | None]:
    """Pieces ``idx`` from their ``old`` and their ``new`` start side by side, replacing the old rows by the new
    ones in the statistics, until the two agree or the piece ends.  Returns (the pieces that reached their end
    without agreeing, their new end states)."""
    t = 0
    while len(idx) and t < run.n:
        T, p = min(MERGE_STEPS, run.n - t), len(idx)
        x = run.data[t:t + T, idx]                                          # [T, p]
        both = _pack(tuple(torch.cat([a, b], dim=1) for a, b in zip(_states(old), _states(new))))
        packed = run.model.trace_packed(torch.cat([x, x], dim=1), both, keys=run.keys, deltas=True,
                                        workspace=run.ws, input_table=run.table)
        values, W = packed.values, packed.values.shape[-1]
        ids = x.reshape(-1)
        run.acc.retract(ids, values[:, :p].reshape(-1, W))
        run.acc.update(ids, values[:, p:].reshape(-1, W), keep=run.keep[t:t + T, idx].reshape(-1),
                       positions=run.positions(idx, t, T))
        if run.collector is not None:
            run.collector.put(values[:, p:], idx, t, new)
        run.retraced += T * p
        t += T
        old, new = _columns(packed.state, torch.arange(p)), _columns(packed.state, torch.arange(p, 2 * p))
        going = torch.nonzero(~_agree(old, new)).squeeze(1)
        if t == run.n:
            return idx[going], _columns(new, going)
        old, new, idx = _columns(old, going), _columns(new, going), idx[going]
    return idx, None


def _correct(run: _Run, start: State, end: State) -> int:
    """Correct the pieces until each starts from its predecessor's end state (see the module docstring).

    ``start`` and ``end`` [L, B, H] are updated in place; returns the rounds."""
    B, rounds = run.data.shape[1], 0
    while B > 1:
        wrong = ~_agree(_columns(start, torch.arange(1, B)), _columns(end, torch.arange(B - 1)))
        todo = torch.nonzero(wrong).squeeze(1) + 1                          # pieces b >= 1
        if not len(todo):
            break
        if rounds >= PARALLEL_ROUNDS:                                       # one after the other: ends at once
            todo = todo[:1]
        new = _columns(end, todo - 1)
        ended, ends = _retrace(run, todo, _columns(start, todo), new)
        _put_columns(start, todo, new)
        if ends is not None and len(ended):
            _put_columns(end, ended, ends)
        rounds += 1
    return rounds


def trace_lm(model: RecurrentModel, stream: torch.Tensor, opts, keys: list[tuple[int, str]],
             ws: Workspace, acc: ResponseAccumulator, progress: Callable[[float], None],
             collector: TokenStateCollector | None = None) -> int:
    """Trace the id stream [N] as one continuous text (see the module docstring); returns the tokens counted.

    ``opts``: the analysis' options (batch_size, warmup, chunk_steps, quantile_cap).  ``collector`` gets every
    chunk, correction and the tail (a :class:`TokenStateCollector`, or anything with its calls: several receivers
    in a ``TraceSinks``).
    """
    total = stream.numel()
    if total == 0:
        return 0
    keep = torch.from_numpy(systematic_keep(stream.numpy(), opts.quantile_cap))    # [N] bool, text order
    B, n = pieces(total, opts.batch_size, opts.warmup)
    table = use_input_table(model, total + (B - 1) * min(opts.warmup, n))
    run = _Run(model, stream[:B * n].view(B, n).t().contiguous(), keep[:B * n].view(B, n).t(), keys, ws, acc,
               table, collector)
    start = warm_state(model, stream, B, n, opts.warmup, ws, table)
    if collector is not None:
        collector.begin(start, B, n)
    end = _first_pass(run, start, opts.chunk_steps, progress)
    rounds = _correct(run, start, end)
    state = _columns(end, torch.tensor([B - 1]))
    if B * n < total:                                                       # the tail continues the last piece
        x = stream[B * n:, None]                                            # [r, 1]
        values = model.trace_packed(x, state, keys=keys, deltas=True, workspace=ws, input_table=table).values
        acc.update(x.reshape(-1), values.view(-1, values.shape[-1]), keep=keep[B * n:],
                   positions=torch.arange(B * n, total))
        if collector is not None:
            collector.add_tail(values, B * n, state)
    log.debug("traced %d tokens as %d pieces of %d (+%d tail), warm-up %d; corrections: %d rounds, %d tokens",
              total, B, n, total - B * n, min(opts.warmup, n) if B > 1 else 0, rounds, run.retraced)
    return total
