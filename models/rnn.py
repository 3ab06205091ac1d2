"""Recurrent language model and many-to-one classifier over one fused core.

Training runs on torch's fused ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (cuDNN on a
GPU).  :meth:`RecurrentModel.trace` returns every layer's state at every step
from the same weights: gated cells are unrolled step by step (one matrix
product for all input projections, then one [B, H] x [H, G*H] product per step),
which yields the gates and the LSTM cell state along the way at the cost of
one forward pass; the vanilla RNN, which has no gates, runs through a one-layer
fused module sharing the trained parameters.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .config import ModelConfig

State = Tensor | tuple[Tensor, Tensor]
_CORES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


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

    def init_weights(self, init_range: float) -> None:
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
        """A one-layer fused module sharing this layer's parameters (built once, kept off the state dict)."""
        cache = self.__dict__.setdefault("_layer_cores", {})
        if layer not in cache:
            cfg = self.cfg
            kwargs = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
            inp = cfg.embed_size if layer == 0 else cfg.hidden_size
            core = _CORES[cfg.cell](inp, cfg.hidden_size, 1, **kwargs).to(self.head.weight.device)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(core, f"{name}_l0", getattr(self.rnn, f"{name}_l{layer}"))
            cache[layer] = core
        return cache[layer]

    @torch.no_grad()
    def trace(self, token_ids: Tensor, state: State | None = None) -> dict[tuple[int, str], Tensor]:
        """States after each step of every layer, from zero state (or ``state``).

        token_ids [T, B] long.  Returns {(layer, name): [T, B, H] float} with
        name ``h``, ``c`` (LSTM) and the gates (LSTM ``i f g o``, GRU ``z r n``).
        Dropout is never applied.  Padding after a sequence's end does not
        change the states before it.
        """
        cfg = self.cfg
        T, B = token_ids.shape
        if state is None:
            state = self.init_state(B)
        x = self.embed(token_ids.to(self.head.weight.device))             # [T, B, E]
        out: dict[tuple[int, str], Tensor] = {}
        for layer in range(cfg.layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, f"{n}_l{layer}")
                                      for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            if cfg.cell == "rnn":  # no gates: the fused module gives all there is
                h, _ = self._layer_core(layer)(x, state[layer][None])
                out[(layer, "h")] = h
            elif cfg.cell == "lstm":
                out.update(_lstm_layer(x, state[0][layer], state[1][layer], w_ih, w_hh, b_ih, b_hh, layer))
            else:
                out.update(_gru_layer(x, state[layer], w_ih, w_hh, b_ih, b_hh, layer))
            x = out[(layer, "h")]
        return out

    @staticmethod
    def final_state(traced: dict[tuple[int, str], Tensor], cell: str, layers: int) -> State:
        """The state after the last traced step, to continue a trace over the next chunk."""
        h = torch.stack([traced[(l, "h")][-1] for l in range(layers)])
        if cell == "lstm":
            return h, torch.stack([traced[(l, "c")][-1] for l in range(layers)])
        return h

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# The gated cells are unrolled here rather than run through the fused module:
# the fused kernels do not expose gates or per-step cell states, and
# recomputing the gates afterwards would cost a second pass over all the
# matrix products.  The input projection of all steps is one matrix product;
# each step then does one [B, H] x [H, G*H] product plus elementwise work,
# the same arithmetic as the fused kernel (a test checks they agree to 1e-5).
def _lstm_layer(x: Tensor, h: Tensor, c: Tensor, w_ih, w_hh, b_ih, b_hh, layer: int) -> dict:
    T, B, _ = x.shape
    H = h.shape[-1]
    gi = torch.nn.functional.linear(x, w_ih, b_ih + b_hh)                 # [T, B, 4H]
    gates = torch.empty(T, B, 4 * H, dtype=x.dtype, device=x.device)     # i f g o, activated
    hs = torch.empty(T, B, H, dtype=x.dtype, device=x.device)
    cs = torch.empty_like(hs)
    w = w_hh.t()
    for t in range(T):
        g = torch.addmm(gi[t], h, w, out=gates[t])                         # [B, 4H]
        g[:, :2 * H].sigmoid_()
        g[:, 2 * H:3 * H].tanh_()
        g[:, 3 * H:].sigmoid_()
        i, f, gg, o = g.chunk(4, dim=1)
        c = torch.addcmul(i * gg, f, c, out=cs[t])
        h = torch.mul(o, c.tanh(), out=hs[t])
    i, f, gg, o = gates.chunk(4, dim=-1)
    return {(layer, "h"): hs, (layer, "c"): cs, (layer, "i"): i, (layer, "f"): f, (layer, "g"): gg,
            (layer, "o"): o}


def _gru_layer(x: Tensor, h: Tensor, w_ih, w_hh, b_ih, b_hh, layer: int) -> dict:
    T, B, _ = x.shape
    H = h.shape[-1]
    gi = torch.nn.functional.linear(x, w_ih, b_ih)                        # [T, B, 3H]: r z n
    rz = torch.empty(T, B, 2 * H, dtype=x.dtype, device=x.device)
    ns = torch.empty(T, B, H, dtype=x.dtype, device=x.device)
    hs = torch.empty_like(ns)
    w = w_hh.t()
    for t in range(T):
        gh = torch.addmm(b_hh, h, w)                                       # [B, 3H]
        torch.add(gi[t, :, :2 * H], gh[:, :2 * H], out=rz[t]).sigmoid_()
        r, z = rz[t].chunk(2, dim=1)
        n = torch.addcmul(gi[t, :, 2 * H:], r, gh[:, 2 * H:], out=ns[t]).tanh_()
        h = torch.add(n, z * (h - n), out=hs[t])                           # (1 − z) n + z h
    r, z = rz.chunk(2, dim=-1)
    return {(layer, "h"): hs, (layer, "z"): z, (layer, "r"): r, (layer, "n"): ns}
