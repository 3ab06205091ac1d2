"""The reference of the ablation tests: the model as torch's own cells in float64, one token at a time, with
units overwritten after every step.  It shares nothing with :mod:`analytics.ablation.engine` but the weights."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.rnn import RecurrentModel

__all__ = ["Reference", "CELLS"]

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


class Reference:
    """The model as torch cells in float64, run one token at a time with units overwritten after each step."""

    def __init__(self, model: RecurrentModel):
        cfg = self.cfg = model.cfg
        self.model = model
        self.cells = []
        for layer in range(cfg.layers):
            cell = CELLS[cfg.cell](cfg.embed_size if layer == 0 else cfg.hidden_size, cfg.hidden_size).double()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).data.copy_(getattr(model.rnn, f"{name}_l{layer}").data)
            self.cells.append(cell)
        self.embed = model.embed.weight.detach().double()
        self.head_w, self.head_b = model.head.weight.detach().double(), model.head.bias.detach().double()

    def _output_gate(self, layer: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        cell, H = self.cells[layer], self.cfg.hidden_size
        rows = slice(3 * H, 4 * H)
        return torch.sigmoid(x @ cell.weight_ih[rows].T + cell.bias_ih[rows] + h @ cell.weight_hh[rows].T
                             + cell.bias_hh[rows])

    @torch.no_grad()
    def run(self, tokens, layer=0, state="h", units=(), fill=None, record=None):
        """Final-layer h after every token [T, H] (and the recorded (layer, state) values, if asked)."""
        H, idx = self.cfg.hidden_size, list(units)
        value = torch.zeros(H, dtype=torch.float64) if fill is None else torch.as_tensor(fill, dtype=torch.float64)
        h = [torch.zeros(1, H, dtype=torch.float64) for _ in self.cells]
        c = [torch.zeros(1, H, dtype=torch.float64) for _ in self.cells]
        tops, seen = [], []
        for tok in tokens:
            x = self.embed[int(tok)][None]
            for i, cell in enumerate(self.cells):
                if self.cfg.cell == "lstm":
                    o = self._output_gate(i, x, h[i])
                    h[i], c[i] = cell(x, (h[i], c[i]))
                    if i == layer and state == "c" and idx:
                        c[i][0, idx] = value[idx]
                        h[i] = o * torch.tanh(c[i])                       # h reads the replaced c
                else:
                    h[i] = cell(x, h[i])
                if i == layer and state == "h" and idx:
                    h[i][0, idx] = value[idx]
                if record == (i, "h"):
                    seen.append(h[i][0].clone())
                elif record == (i, "c"):
                    seen.append(c[i][0].clone())
                x = h[i]
            tops.append(x[0])
        return torch.stack(tops), (torch.stack(seen) if seen else None)

    def losses(self, stream, **kw) -> np.ndarray:
        top, _ = self.run(stream[:-1], **kw)
        logp = torch.log_softmax(top @ self.head_w.T + self.head_b, dim=1)
        return -logp[torch.arange(len(top)), stream[1:]].numpy()

    def probs(self, doc, **kw) -> np.ndarray:
        top, _ = self.run(doc, **kw)
        return torch.softmax(top[-1] @ self.head_w.T + self.head_b, dim=0).numpy()

    def mean(self, tokens_list, layer, state) -> np.ndarray:
        values = [self.run(t, record=(layer, state))[1] for t in tokens_list]
        return torch.cat(values).mean(dim=0).numpy()
