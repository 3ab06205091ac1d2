"""Recurrent language model and many-to-one classifier over one fused core.

Training runs on torch's fused ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (cuDNN on a
GPU).  :meth:`RecurrentModel.trace` returns every layer's state at every step
from the same weights: h, the LSTM cell state c and the gate activations.  On
a CPU the gated cells are unrolled step by step; on a GPU each layer runs its
fused module for h and the gates and c are reconstructed from it with batched
products (both in :mod:`models.trace_cells`); the vanilla RNN, which has no
gates, always runs through a one-layer fused module.
:meth:`RecurrentModel.trace_packed` is the same trace written into one
reusable [T, B, states x H] buffer, with the updates Δh in place of h and c if
asked: what the analysis streams.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from . import trace_cells as cells
from .buffers import Workspace
from .config import ModelConfig
from .runtime import run_split, split_parts

State = Tensor | tuple[Tensor, Tensor]
#: The CPU trace cuts its batch into parts of at least this many rows (one per torch thread).
MIN_SPLIT_BATCH = 8
_CORES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@contextmanager
def _exact_cudnn() -> Iterator[None]:
    """cuDNN without TF32 inside the block: a trace must match the float32 definition to 1e-5, and
    TF32's 10-bit mantissa (torch allows it in cuDNN by default) is ~1e-3 off."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = old


def _fused(method: str, device: torch.device) -> bool:
    """Whether ``method`` (see RecurrentModel.trace_packed) runs the fused module on ``device``."""
    if method == "auto":
        method = "fused" if device.type == "cuda" else "loop"
    if method not in ("loop", "fused"):
        raise ValueError(f"method must be auto, loop or fused, got {method!r}")
    return method == "fused"


class RecurrentModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_size)
        self.drop = nn.Dropout(cfg.dropout)
        kwargs = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
        self.rnn = _CORES[cfg.cell](cfg.embed_size, cfg.hidden_size, cfg.layers,
                                    dropout=cfg.dropout if cfg.layers > 1 else 0.0, **kwargs)
        out = cfg.vocab_size if cfg.task == "lm" else cfg.num_classes
        self.head = nn.Linear(cfg.hidden_size, out)

    def init_weights(self, init_range: float, scheme: str = "uniform") -> None:
        """``uniform``: every parameter ±init_range (Zaremba et al.).  ``examples``: the embedding and
        output weights ±init_range, the output bias 0, the recurrent core torch's own ±1/√H
        (pytorch/examples word_language_model)."""
        if scheme == "examples":
            self.rnn.reset_parameters()
            nn.init.uniform_(self.embed.weight, -init_range, init_range)
            nn.init.uniform_(self.head.weight, -init_range, init_range)
            nn.init.zeros_(self.head.bias)
            return
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def init_state(self, batch: int) -> State:
        z = torch.zeros(self.cfg.layers, batch, self.cfg.hidden_size, device=self.head.weight.device)
        return (z, z.clone()) if self.cfg.cell == "lstm" else z

    def forward(self, x: Tensor, state: State | None = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        """x [T, B] ids.  LM: logits [T, B, V]; classifier: logits [B, C] at each sequence's last token."""
        emb = self.drop(self.embed(x))                                   # [T, B, E]
        if self.cfg.task == "lm":
            out, state = self.rnn(emb, state)                            # [T, B, H]
            return self.head(self.drop(out)), state
        if lengths is not None:
            packed = pack_padded_sequence(emb, lengths.cpu(), enforce_sorted=False)
            _, state = self.rnn(packed, state)
        else:
            _, state = self.rnn(emb, state)
        h_last = (state[0] if isinstance(state, tuple) else state)[-1]    # [B, H]
        return self.head(self.drop(h_last)), state

    # ------------------------------------------------------------------ tracing
    def _layer_core(self, layer: int) -> nn.Module:
        """A one-layer fused module with a copy of this layer's weights (cached until they change).

        A copy rather than shared parameters: cuDNN wants a layer's weights in
        one flat buffer, which shared slices of the multi-layer module are not
        (torch would re-pack them on every call, with a warning).
        """
        params = [getattr(self.rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        stamp = tuple((p.data_ptr(), p._version) for p in params)
        cache = self.__dict__.setdefault("_layer_cores", {})
        if layer not in cache or cache[layer][0] != stamp:
            cfg = self.cfg
            kwargs = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
            inp = cfg.embed_size if layer == 0 else cfg.hidden_size
            core = _CORES[cfg.cell](inp, cfg.hidden_size, 1, **kwargs).to(self.head.weight.device).eval()
            with torch.no_grad():
                for name, p in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params):
                    getattr(core, f"{name}_l0").copy_(p)
            core.flatten_parameters()
            cache[layer] = (stamp, core)
        return cache[layer][1]

    def trace(self, token_ids: Tensor, state: State | None = None) -> dict[tuple[int, str], Tensor]:
        """States after each step of every layer, from zero state (or ``state``).

        token_ids [T, B] long.  Returns {(layer, name): [T, B, H] float} with
        name ``h``, ``c`` (LSTM) and the gates (LSTM ``i f g o``, GRU ``z r n``);
        the tensors are views into one buffer.  Dropout is never applied.
        Padding after a sequence's end does not change the states before it.
        """
        return self.trace_packed(token_ids, state).as_dict()

    def state_keys(self) -> list[tuple[int, str]]:
        """Every (layer, state) that :meth:`trace` returns, layer by layer in ``cfg.states`` order."""
        return [(layer, s) for layer in range(self.cfg.layers) for s in self.cfg.states]

    @torch.no_grad()
    def trace_packed(self, token_ids: Tensor, state: State | None = None, *,
                     keys: list[tuple[int, str]] | None = None, deltas: bool = False,
                     workspace: Workspace | None = None, input_table: bool = False,
                     method: str = "auto") -> PackedTrace:
        """Trace into one [T, B, len(keys) * H] buffer: state ``keys[k]`` in columns k*H .. (k+1)*H.

        ``keys`` (default: all, see :meth:`state_keys`) must follow the order
        of :meth:`state_keys`.  With ``deltas``, the ``h`` and ``c`` columns
        hold the updates Δh_t = h_t − h_{t−1} (h_{−1} taken from ``state``);
        gates are always their activations.  With a ``workspace`` the buffers
        are reused from call to call, so the result is valid only until the
        next call with the same workspace.

        ``input_table``: for a gated cell, look the first layer's input
        projection up in a [V, G*H] table of every word's projection
        (:meth:`input_table`, built once per set of weights) instead of
        multiplying each chunk's embeddings: a gather instead of a matrix
        product.  Worth it when many more tokens than V are traced.

        On a CPU at several torch threads the batch is traced in parts, one
        per thread (see :func:`models.runtime.run_split`).

        ``method``: ``loop`` unrolls the gated cells step by step, ``fused``
        runs the fused module (cuDNN) per layer and reconstructs the gates and
        c from its h (see :mod:`models.trace_cells`); ``auto`` is ``fused`` on
        a GPU, ``loop`` on a CPU, where it measured faster.
        """
        cfg = self.cfg
        keys = self._checked_keys(keys)
        device = self.head.weight.device
        fused = _fused(method, device)
        ws = workspace or Workspace(device)
        T, B = token_ids.shape
        H = cfg.hidden_size
        if state is None:
            state = self.init_state(B)
        out = ws.get("values", (T, B, len(keys) * H))
        col = {k: i * H for i, k in enumerate(keys)}
        table = bool(input_table and cfg.cell != "rnn" and not fused)
        self._prepare_weights(fused, table)
        # On a CPU the step loop's batch is cut into one part per torch thread, each traced on one
        # intra-op thread (models.runtime.run_split); a part under MIN_SPLIT_BATCH rows is not worth it.
        parts = split_parts(B // MIN_SPLIT_BATCH) if device.type == "cpu" and not fused else 1
        bounds = [B * i // parts for i in range(parts + 1)]

        def part(i: int) -> tuple[Tensor, Tensor | None]:
            rows = slice(bounds[i], bounds[i + 1])
            sub = tuple(s[:, rows] for s in state) if cfg.cell == "lstm" else state[:, rows]
            with torch.no_grad():                                          # grad mode is per thread
                return self._trace_rows(token_ids[:, rows], sub, out[:, rows], col, ws if parts == 1 else ws.child(i),
                                        deltas, table, fused)

        finals = run_split(part, parts)
        h = torch.cat([f[0] for f in finals], dim=1)
        return PackedTrace(out, keys, H, (h, torch.cat([f[1] for f in finals], dim=1)) if cfg.cell == "lstm" else h)

    def _checked_keys(self, keys: list[tuple[int, str]] | None) -> list[tuple[int, str]]:
        """``keys`` (default: all) after checking they are distinct and in the order of :meth:`state_keys`."""
        order = self.state_keys()
        keys = order if keys is None else list(keys)
        rank = {k: i for i, k in enumerate(order)}
        ranks = [rank.get(k, -1) for k in keys]
        if not keys or min(ranks) < 0 or any(a >= b for a, b in zip(ranks, ranks[1:])):
            raise ValueError(f"keys must be distinct (layer, state) pairs in the order of state_keys(), got {keys}")
        return keys

    def _prepare_weights(self, fused: bool, table: bool) -> None:
        """Build the weights every part of a trace reads, once here rather than raced for by the parts."""
        for layer in range(self.cfg.layers):
            if self.cfg.cell != "rnn":
                self._cell_weights(layer)
            if fused or self.cfg.cell == "rnn":
                self._layer_core(layer)
        if table:
            self.input_table()

    def _trace_rows(self, token_ids: Tensor, state: State, out: Tensor, col: dict[tuple[int, str], int],
                    ws: Workspace, deltas: bool, input_table: bool, fused: bool) -> tuple[Tensor, Tensor | None]:
        """The trace of :meth:`trace_packed` for some rows of the batch: fills ``out`` [T, b, ...], returns the
        final (h, c) [layers, b, H] (c None for cells without one)."""
        cfg = self.cfg
        device = self.head.weight.device
        T, B = token_ids.shape
        H = cfg.hidden_size
        ids = token_ids.to(device).reshape(-1)
        G = {"lstm": 4, "gru": 3}.get(cfg.cell, 0)
        if input_table:
            x = None                                                       # layer 0 needs no embeddings
        else:
            x = torch.index_select(self.embed.weight, 0, ids, out=ws.get("embed", (T * B, cfg.embed_size)))
            x = x.view(T, B, cfg.embed_size)                               # = self.embed(token_ids)
        final_h, final_c = [], []
        with _exact_cudnn():
            for layer in range(cfg.layers):
                cols = {s: col.get((layer, s)) for s in cfg.states}
                hp = ws.get(f"h{layer % 2}", (T + 1, B, H))                  # [h0, h_1 .. h_T]
                hs = hp[1:]
                h0 = (state[0] if cfg.cell == "lstm" else state)[layer]
                if G:
                    w_ih, b, w_hh_t, b_hh = self._cell_weights(layer)
                    gi = ws.get("gi", (T, B, G * H))
                    if input_table and layer == 0:
                        torch.index_select(self.input_table(), 0, ids, out=gi.view(T * B, G * H))
                    else:
                        torch.addmm(b, x.reshape(T * B, -1), w_ih.t(), out=gi.view(T * B, G * H))
                if cfg.cell == "lstm":
                    c0 = state[1][layer]
                    if fused:
                        c_last = cells.lstm_fused(self._layer_core(layer), w_hh_t, gi, x, h0, c0, hp, out, cols,
                                                  deltas, ws)
                    else:
                        c_last = cells.lstm_loop(w_hh_t, gi, h0, c0, hs, out, cols, deltas, ws)
                    final_c.append(c_last)
                elif cfg.cell == "gru":
                    if fused:
                        cells.gru_fused(self._layer_core(layer), w_hh_t, b_hh, gi, x, h0, hp, out, cols, deltas, ws)
                    else:
                        cells.gru_loop(w_hh_t, b_hh, gi, h0, hs, out, cols, deltas, ws)
                else:  # no gates: the fused module gives all there is
                    hs.copy_(self._layer_core(layer)(x, h0[None].contiguous())[0])
                    if cols["h"] is not None:
                        cells.write_h(out[..., cols["h"]:cols["h"] + H], hs, h0, deltas)
                final_h.append(hs[-1].clone())
                x = hs
        return torch.stack(final_h), (torch.stack(final_c) if final_c else None)

    @staticmethod
    def final_state(traced: dict[tuple[int, str], Tensor], cell: str, layers: int) -> State:
        """The state after the last traced step, to continue a trace over the next chunk."""
        h = torch.stack([traced[(i, "h")][-1] for i in range(layers)])
        if cell == "lstm":
            return h, torch.stack([traced[(i, "c")][-1] for i in range(layers)])
        return h

    def clear_trace_cache(self) -> None:
        """Forget the rearranged weights, the one-layer fused copies and the input table; the next trace
        rebuilds them."""
        for name in ("_cell_w", "_input_table", "_layer_cores"):
            self.__dict__.pop(name, None)

    def input_table(self) -> Tensor:
        """[V, G*H]: the first layer's input projection of every word (gated cells; see trace_packed), from
        :meth:`_cell_weights` (an LSTM's g and a GRU's n columns doubled)."""
        w_ih, b = self._cell_weights(0)[:2]
        stamp = (self.embed.weight.data_ptr(), self.embed.weight._version, self.__dict__["_cell_w"][0][0])
        cached = self.__dict__.get("_input_table")
        if cached is None or cached[0] != stamp:
            cached = (stamp, torch.addmm(b, self.embed.weight.detach(), w_ih.t()))
            self.__dict__["_input_table"] = cached
        return cached[1]

    def _cell_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """This layer's weights arranged for the unrolled cells (cached until the parameters change).

        The LSTM's two biases are summed and its g rows doubled, GRU rows
        are reordered from torch's r, z, n to our z, r, n and the n rows
        doubled (tanh as 2σ(2x) − 1, see :mod:`models.trace_cells`).  Returns (w_ih [G*H, E], bias [G*H],
        w_hh^T [H, G*H], b_hh [G*H]).
        """
        params = [getattr(self.rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        stamp = tuple((p.data_ptr(), p._version) for p in params)
        cache = self.__dict__.setdefault("_cell_w", {})
        if layer in cache and cache[layer][0] == stamp:
            return cache[layer][1]
        H = self.cfg.hidden_size
        w_ih, w_hh, b_ih, b_hh = (p.detach().clone() for p in params)
        if self.cfg.cell == "lstm":                                        # i f g o, g rows doubled
            b = b_ih + b_hh
            for t in (w_ih, b, w_hh):                                      # tanh(x) = 2σ(2x) − 1: see trace_cells
                t[2 * H:3 * H] *= 2
            res = (w_ih, b, w_hh.t().contiguous(), b_hh)
        else:                                                              # r z n -> z r n
            perm = torch.cat([torch.arange(H, 2 * H), torch.arange(H), torch.arange(2 * H, 3 * H)])
            w_ih, w_hh, b_ih, b_hh = (t[perm.to(t.device)] for t in (w_ih, w_hh, b_ih, b_hh))
            for t in (w_ih, w_hh, b_ih, b_hh):                             # n rows doubled: tanh(x) = 2σ(2x) − 1
                t[2 * H:] *= 2
            res = (w_ih, b_ih, w_hh.t().contiguous(), b_hh)
        cache[layer] = (stamp, res)
        return res

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class PackedTrace:
    """The result of :meth:`RecurrentModel.trace_packed`.

    values: [T, B, len(keys) * H], state ``keys[k]`` in columns k*H .. (k+1)*H.
    state: the state after the last step, to continue over the next chunk.
    """

    values: Tensor
    keys: list[tuple[int, str]]
    hidden_size: int
    state: State

    def __getitem__(self, key: tuple[int, str]) -> Tensor:
        c0 = self.keys.index(key) * self.hidden_size
        return self.values[..., c0:c0 + self.hidden_size]

    def as_dict(self) -> dict[tuple[int, str], Tensor]:
        return {k: self[k] for k in self.keys}
