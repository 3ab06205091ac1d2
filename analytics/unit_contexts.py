"""Every unit's top contexts: the positions of the analysed split where its value is highest and lowest.

For every traced (layer, state) and unit, four lists of ``TOP`` positions (the ``unit_contexts`` view):

- ``h_top`` / ``h_bottom``: the value itself after reading the token (h_t, the cell c_t, or a gate's activation);
- ``dh_top`` / ``dh_bottom``: its change from the previous token, Δ_t = v_t − v_(t−1) (from zero state at a
  stream's or a document's start for h and c, as the statistics have it; a gate has no value before the first
  token of a stream or document, so that token has no Δ).

:class:`ContextTracker` takes the trace's chunks as they come (the same calls as
:class:`analytics.token_states.TokenStateCollector`: a language model's pieces, their corrections, the tail;
or a classifier's document batches), on the trace's device, whatever token states are stored.  Each list is a
streaming top-k (:class:`RunningTop`): ``torch.topk`` fills it from the first chunk; after that only the values
above its current k-th value are candidates, merged by one sort.  A correction of the exact stream trace
(:mod:`analytics.lm_trace`) traces whole windows of a piece again: their entries are removed and the corrected
values offered.  An entry let go earlier in favour of a value that a correction then lowered would be lost, so
each list keeps ``2 · TOP`` entries and, per window of the text, the largest value it let go; an entry is stored
only if no value let go from a window still in place exceeds it: provably the true top.  (In practice every
unit keeps all ``TOP``; pieces started cold, the worst case, lose a few of some units: tested.)

Written by hand: no library keeps a per-column streaming top-k with removal on a torch device.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .lm_trace import MERGE_STEPS

__all__ = ["TOP", "KINDS", "RunningTop", "ContextTracker", "TraceSinks"]

#: Positions stored per unit and kind.
TOP = 20
#: The four lists, in the order of ContextTracker.tops.
KINDS = ("h_top", "h_bottom", "dh_top", "dh_bottom")
_NEG = float("-inf")


class RunningTop:
    """The ``k`` largest (or, with ``largest=False``, smallest) values of each of ``W`` columns over a stream of
    [N, W] chunks, with their positions.  Kept as scores (the value, negated for the smallest), descending.

    Every offered row belongs to one of ``segments`` segments of the text (a correction replaces whole
    segments); per segment and column the largest score let go is kept, so that an entry can be proven the
    true top: it is when no score let go from a segment still in place exceeds it.
    """

    def __init__(self, k: int, width: int, segments: int = 1, device: torch.device | str = "cpu",
                 largest: bool = True):
        self.k, self.width, self.sign = k, width, 1.0 if largest else -1.0
        self.vals = torch.full((k, width), _NEG, device=device)               # [k, W] scores, descending
        self.pos = torch.full((k, width), -1, dtype=torch.long, device=device)
        self.seg = torch.zeros((k, width), dtype=torch.long, device=device)
        self.let_go = torch.full((segments, width), _NEG, device=device)      # [S, W] largest score let go
        self.filled = False

    def update(self, values: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor | None = None) -> None:
        """Offer ``values`` [N, W] (NaN: not a candidate) at text ``positions`` [N] in ``segments`` [N]."""
        positions = positions.to(self.pos.device)
        segments = torch.zeros_like(positions) if segments is None else segments.to(self.pos.device)
        if not self.filled:                             # the first chunk: torch.topk of all of it
            self._first(values, positions, segments)
            return
        # after it, only values beyond each column's k-th are candidates (NaN compares false); the others are let
        # go, all at most that k-th score
        present = torch.unique(segments)
        self.let_go[present] = torch.maximum(self.let_go[present], self.vals[-1][None, :])
        beyond = values > self.vals[-1][None, :] if self.sign > 0 else values < -self.vals[-1][None, :]
        rows, cols = torch.nonzero(beyond, as_tuple=True)
        if len(cols):
            order = torch.argsort(cols, stable=True)                            # by column (few candidates)
            rows, cols = rows[order], cols[order]
            self._merge(self.sign * values[rows, cols], positions[rows], segments[rows], cols)

    def _first(self, values: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor) -> None:
        scores = torch.nan_to_num(self.sign * values, nan=_NEG)                 # [N, W]
        k = min(self.k, scores.shape[0])
        top = torch.topk(scores, k, dim=0)                                      # [k, W], sorted
        let_go = scores.scatter_(0, top.indices, _NEG)                          # the rest, in place
        self.let_go.scatter_reduce_(0, segments[:, None].expand_as(let_go), let_go, "amax")
        self.vals[:k], self.pos[:k], self.seg[:k] = top.values, positions[top.indices], segments[top.indices]
        self.filled = True

    def _let_go(self, scores: torch.Tensor, segs: torch.Tensor, cols: torch.Tensor) -> None:
        flat = self.let_go.view(-1)
        flat.scatter_reduce_(0, (segs * self.width + cols).reshape(-1), scores.reshape(-1), "amax")

    def _keep(self, vals: torch.Tensor, pos: torch.Tensor, seg: torch.Tensor) -> None:
        """The k best of [m, W] candidates (m >= k); those let go are recorded."""
        top = torch.topk(vals, self.k, dim=0)
        if vals.shape[0] > self.k:
            dropped = vals.scatter(0, top.indices, _NEG)
            r, c = torch.nonzero(torch.isfinite(dropped), as_tuple=True)
            self._let_go(dropped[r, c], seg[r, c], c)
        self.vals, self.pos, self.seg = top.values, torch.gather(pos, 0, top.indices), torch.gather(seg, 0, top.indices)

    def _merge(self, cand: torch.Tensor, cand_pos: torch.Tensor, cand_seg: torch.Tensor,
               cand_cols: torch.Tensor) -> None:
        """Merge candidates (score, position, segment, column; sorted by column) into the lists: laid out as a
        dense [most per column, W] block under the lists, then one torch.topk per column."""
        W = self.width
        counts = torch.bincount(cand_cols, minlength=W)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(cand_cols), device=cand.device) - first[cand_cols]
        m = int(counts.max())
        vals = torch.full((m, W), _NEG, device=cand.device)
        pos = torch.full((m, W), -1, dtype=torch.long, device=cand.device)
        seg = torch.zeros((m, W), dtype=torch.long, device=cand.device)
        vals[rank, cand_cols], pos[rank, cand_cols], seg[rank, cand_cols] = cand, cand_pos, cand_seg
        self._keep(torch.cat([self.vals, vals]), torch.cat([self.pos, pos]), torch.cat([self.seg, seg]))

    def remove(self, positions: torch.Tensor, segments: torch.Tensor) -> None:
        """Forget ``segments`` (whole, at ``positions``): traced again, their corrected values follow by update."""
        self.let_go[segments.to(self.let_go.device)] = _NEG
        gone = torch.isin(self.pos, positions.to(self.pos.device))
        if bool(gone.any()):
            self._keep(self.vals.masked_fill(gone, _NEG), self.pos, self.seg)

    def result(self, top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values [top, W], positions [top, W], valid [top, W]): the leading entries proven the true top,
        those no score let go from a segment still in place exceeds (a correction can leave fewer)."""
        head = self.vals[:top]
        valid = torch.isfinite(head) & (head >= self.let_go.max(dim=0).values[None, :])
        return (self.sign * head).cpu().numpy(), self.pos[:top].cpu().numpy(), valid.cpu().numpy()


class ContextTracker:
    """The top contexts of every unit of the traced keys (the packed layout of ``RecurrentModel.trace_packed``:
    key j in columns j·H .. (j+1)·H, Δh for h and c, the activation for a gate)."""

    def __init__(self, traced: Sequence[tuple[int, str]], hidden: int, device: torch.device | str = "cpu",
                 top: int = TOP):
        self.keys, self.hidden, self.top = list(traced), hidden, top
        W = len(self.keys) * hidden
        self.summed = torch.tensor([s in ("h", "c") for _, s in self.keys]).repeat_interleave(hidden).to(device)
        self.kinds = "summed" if bool(self.summed.all()) else "gates" if not bool(self.summed.any()) else "mixed"
        self.device, self.width = device, W
        self.tops = self._lists(1)
        self.pieces, self.windows = (1, 0), 1      # a language model's pieces, and windows per piece
        self.prev: torch.Tensor | None = None      # [B, W]: the value before the next step of each piece
        self.first: torch.Tensor | None = None     # [B, W]: each piece's value at its first step
        self.last: torch.Tensor | None = None      # [B, W]: each piece's value at its last step
        self.retraced: torch.Tensor | None = None  # [B, W]: the last step a correction put, per piece

    def _lists(self, segments: int) -> list[RunningTop]:
        return [RunningTop(2 * self.top, self.width, segments, self.device, largest=not kind.endswith("bottom"))
                for kind in KINDS]

    def _segments(self, pieces: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The text window of (piece, step): what a correction traces again as a whole."""
        return pieces * self.windows + torch.div(steps, MERGE_STEPS, rounding_mode="floor")

    def _start(self, state, B: int) -> torch.Tensor:
        """[B, W] values before a piece's first step: the state for h and c, NaN for gates (none before)."""
        W = len(self.keys) * self.hidden
        prev = torch.full((B, W), float("nan"), device=self.device)
        h, c = state if isinstance(state, tuple) else (state, None)
        for j, (layer, name) in enumerate(self.keys):
            src = None if state is None else h if name == "h" else c if name == "c" else None
            if name in ("h", "c"):
                prev[:, j * self.hidden:(j + 1) * self.hidden] = 0 if src is None else src[layer].to(self.device)
        return prev

    def _offer(self, values: torch.Tensor, prev: torch.Tensor, positions: torch.Tensor,
               segments: torch.Tensor | None = None) -> torch.Tensor:
        """Chunk [T, B, W] after ``prev`` [B, W] at ``positions`` [T, B] (in text ``segments`` [T, B], None: one);
        returns the values [T, B, W]."""
        values = values.to(self.device, torch.float32)
        if self.kinds == "summed":                   # h and c only (the default): values are Δh, h their sum
            h, dh = torch.cumsum(values, 0).add_(prev[None]), values
        elif self.kinds == "gates":
            h, dh = values, values - torch.cat([prev[None], values[:-1]])
        else:
            summed = self.summed[None, None, :]
            h = torch.where(summed, torch.cumsum(values, 0) + torch.nan_to_num(prev)[None], values)
            dh = torch.where(summed, values, h - torch.cat([prev[None], h[:-1]]))
        flat_pos = positions.reshape(-1).to(self.device)
        flat_seg = None if segments is None else segments.reshape(-1).to(self.device)
        W = h.shape[-1]
        for run, v in zip(self.tops, (h, h, dh, dh)):
            run.update(v.reshape(-1, W), flat_pos, flat_seg)
        return h

    def begin(self, state, B: int, n: int) -> None:
        """A language model's B pieces of n tokens (piece b at positions b·n ..), from ``state`` (None: zero)."""
        self.pieces, self.windows = (B, n), -(-n // MERGE_STEPS)
        self.tops = self._lists(B * self.windows + 1)                 # + the tail
        self.prev = self._start(state, B)
        self.first, self.last = self.prev.clone(), self.prev.clone()
        self.retraced = torch.full_like(self.prev, float("nan"))

    def add(self, values: torch.Tensor, done: int) -> None:
        """Chunk [T, B, W] at steps done .. done+T of every piece."""
        B, n = self.pieces
        T = values.shape[0]
        steps = torch.arange(done, done + T)[:, None]
        positions = torch.arange(B)[None, :] * n + steps                                       # [T, B]
        h = self._offer(values, self.prev, positions, self._segments(torch.arange(B)[None, :], steps))
        self.prev = h[-1]
        if done == 0:
            self.first = h[0].clone()
        if done + T == n:
            self.last = h[-1].clone()

    def put(self, values: torch.Tensor, pieces: torch.Tensor, start: int, state) -> None:
        """Steps start .. start+T of ``pieces`` [p] traced again from ``state`` (a correction): their old
        entries are removed, the new values offered."""
        B, n = self.pieces
        T, idx = values.shape[0], pieces.to(self.device)
        assert start % MERGE_STEPS == 0 and min(MERGE_STEPS, n - start) == T, "a correction replaces one window"
        positions = pieces[None, :] * n + torch.arange(start, start + T)[:, None]             # [T, p]
        segments = self._segments(pieces, torch.tensor(start)).expand(T, -1)                   # [T, p]
        for run in self.tops:
            run.remove(positions.reshape(-1).to(self.device), segments[0].to(self.device))
        prev = self._start(state, len(pieces))
        gates = ~self.summed
        if start > 0:                                   # a gate's previous value: the last step put before
            prev[:, gates] = self.retraced[idx][:, gates]
        h = self._offer(values, prev, positions, segments)
        self.retraced[idx] = h[-1]
        if start == 0:
            self.first[idx] = h[0]
        if start + T == n:
            self.last[idx] = h[-1]

    def add_tail(self, values: torch.Tensor, start: int, state) -> None:
        """The tail [r, 1, W] continuing the last piece from its end ``state``, at positions start .."""
        prev = self._start(state, 1)
        gates = ~self.summed
        prev[:, gates] = self.last[-1:, gates]
        r = values.shape[0]
        self._offer(values, prev, torch.arange(start, start + r)[:, None],
                    torch.full((r, 1), self.pieces[0] * self.windows))

    def add_documents(self, values: torch.Tensor, starts: Sequence[int], lengths: Sequence[int]) -> None:
        """A classifier batch [T, B, W] from zero state: document b at positions starts[b] .. + lengths[b]."""
        T, B = values.shape[:2]
        steps = torch.arange(T)[:, None]
        n = torch.tensor(list(lengths))[None, :]
        positions = torch.tensor(list(starts))[None, :] + steps                               # [T, B]
        values = values.to(self.device, torch.float32).clone()
        values[(steps >= n).to(self.device)] = float("nan")                                   # padding
        self._offer(values, self._start(None, B), positions)

    def _piece_starts(self) -> None:
        """A gate's Δ at the first step of pieces 1 .. B−1: against the last step of the piece before."""
        B, n = self.pieces
        if B < 2 or self.first is None:
            return
        gates = ~self.summed
        d = torch.where(gates[None, :], self.first[1:] - self.last[:-1], float("nan"))      # [B-1, W]
        positions = torch.arange(1, B) * n
        segments = self._segments(torch.arange(1, B), torch.zeros(B - 1, dtype=torch.long))
        self.tops[2].update(d, positions, segments)
        self.tops[3].update(d, positions, segments)

    def frame(self, model_id: str) -> pd.DataFrame:
        """The ``unit_contexts`` rows (see analytics/schema/analysis.py)."""
        self._piece_starts()
        H, frames = self.hidden, []
        for kind, run in zip(KINDS, self.tops):
            vals, pos, valid = run.result(self.top)                                 # [top, W]
            rank, col = np.nonzero(valid)
            frames.append(pd.DataFrame({
                "layer": np.array([self.keys[c // H][0] for c in col], np.int32),
                "state": [self.keys[c // H][1] for c in col],
                "unit": (col % H).astype(np.int32), "kind": kind, "rank": (rank + 1).astype(np.int32),
                "position": pos[rank, col].astype(np.int32), "value": (vals[rank, col]).astype(np.float32)}))
        out = pd.concat(frames, ignore_index=True)
        out.insert(0, "model_id", model_id)
        return out.sort_values(["layer", "state", "unit", "kind", "rank"], ignore_index=True)


class TraceSinks:
    """Hands the trace's chunks to each of several receivers with the collector's calls (None ones skipped)."""

    def __init__(self, *sinks):
        self.sinks = [s for s in sinks if s is not None]

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def __getattr__(self, name: str):
        def call(*args, **kw) -> None:
            for s in self.sinks:
                getattr(s, name)(*args, **kw)
        return call
