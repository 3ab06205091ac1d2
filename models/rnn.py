"""Recurrent language model and many-to-one classifier over one fused core.

Training runs on torch's fused ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (cuDNN on a
GPU).  :meth:`RecurrentModel.trace` returns every layer's state at every step
from the same weights: it runs each layer through a one-layer fused module that
shares the trained parameters, then recomputes the gate activations for all
steps at once from the layer input and the previous hidden states (one matmul,
no Python loop over time); only the LSTM cell state needs a scan, which is an
elementwise multiply-add per step.
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
            core = self._layer_core(layer)
            if cfg.cell == "lstm":
                h0, c0 = state[0][layer], state[1][layer]                   # [B, H]
                h, _ = core(x, (h0[None], c0[None]))                        # [T, B, H]
            else:
                h0 = state[layer]
                h, _ = core(x, h0[None])
            h_prev = torch.cat([h0[None], h[:-1]], 0)                       # [T, B, H]
            out[(layer, "h")] = h
            gi = torch.nn.functional.linear(x, core.weight_ih_l0, core.bias_ih_l0)      # [T, B, G*H]
            gh = torch.nn.functional.linear(h_prev, core.weight_hh_l0, core.bias_hh_l0)  # [T, B, G*H]
            if cfg.cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=-1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                ig = i * g
                c = torch.empty_like(h)
                prev = c0
                for t in range(T):  # c_t = f_t * c_{t-1} + i_t * g_t: a scan, elementwise per step
                    prev = torch.addcmul(ig[t], f[t], prev)
                    c[t] = prev
                out.update({(layer, "c"): c, (layer, "i"): i, (layer, "f"): f, (layer, "g"): g, (layer, "o"): o})
            elif cfg.cell == "gru":
                ir, iz, in_ = gi.chunk(3, dim=-1)
                hr, hz, hn = gh.chunk(3, dim=-1)
                r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
                n = torch.tanh(in_ + r * hn)
                out.update({(layer, "z"): z, (layer, "r"): r, (layer, "n"): n})
            x = h
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
