"""Gradient flow: how fast ‖∂h_t/∂h_{t−k}‖ decays with the distance k.

For each layer we take ``windows`` windows of K+1 tokens from the corpus,
start each from the state the model reaches after reading the text before it
(a warm state, not zero), unroll that layer one step at a time so every h_t is
a node of the autograd graph, and back-propagate a random probe u from the
last state: one backward pass gives uᵀ ∂h_T/∂h_{T−k} for every k at once.
With u uniform on the unit sphere, E‖uᵀJ‖² = ‖J‖_F² / H, so √H·‖uᵀJ‖ is an
unbiased-in-square estimate of the Frobenius norm of the Jacobian; we average
it over windows and probes (the std is over windows).  For an LSTM the
derivative is taken with the cell state c_{t−k} held fixed, the usual
definition for the hidden-to-hidden path.

The unrolled layer and the backward pass run in float64, on a double copy of
the layer's weights (the inputs and warm states come from the float32 trace):
the norms of a contracting network decay geometrically, and in float32 they
underflow to exact zeros (a vanilla RNN's past k ≈ 29); float64 reaches
~1e-308.  Everything runs on the model's device.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from models.rnn import RecurrentModel


def gradient_flow(model: RecurrentModel, data: torch.Tensor, K: int = 50, *, windows: int = 64, probes: int = 4,
                  warmup: int = 200, seed: int = 0) -> pd.DataFrame:
    """data: a batchified id stream [N, B].  Returns layer, distance, grad_norm, grad_norm_std rows."""
    cfg = model.cfg
    device = model.head.weight.device
    data = data.to(device)
    N, B = data.shape
    K = max(1, min(K, N - 1))
    gen = torch.Generator().manual_seed(seed)
    # Windows: the last K+1 steps of up to `windows` streams, warmed up on the text just before them.
    cols = torch.arange(min(windows, B))
    start = N - (K + 1)
    # Only the final warm state and each layer's h in the window are needed: trace just those
    # (the full trace of every state of a 2x650 LSTM would hold ~0.5 GB here).
    h_keys = [(layer, "h") for layer in range(cfg.layers)]
    init = (model.trace_packed(data[max(0, start - warmup):start, cols], keys=h_keys[-1:]).state if start > 0
            else model.init_state(len(cols)))                               # warmed on the text before
    window_trace = model.trace_packed(data[start:, cols], init, keys=h_keys)
    x_emb = model.embed(data[start:, cols]).detach()                          # [K+1, W, E]
    rows = []
    for layer in range(cfg.layers):
        core = copy.deepcopy(model._layer_core(layer)).double().requires_grad_(False)   # float64 copy
        inp = x_emb if layer == 0 else window_trace[(layer - 1, "h")]          # [K+1, W, *]
        inp = inp.double().repeat(1, probes, 1)                               # [K+1, W*P, *]
        h0 = init[0][layer] if cfg.cell == "lstm" else init[layer]
        h = h0.double().repeat(probes, 1)[None].detach()                      # [1, W*P, H]
        c = init[1][layer].double().repeat(probes, 1)[None].detach() if cfg.cell == "lstm" else None
        nodes = []
        with torch.enable_grad():
            for t in range(K + 1):
                h = h.detach().requires_grad_(True) if t == 0 else h
                nodes.append(h)
                _, st = core(inp[t:t + 1], (h, c) if c is not None else h)
                if c is not None:
                    h, c = st
                else:
                    h = st
            u = torch.randn(h.shape, generator=gen).to(device, torch.float64)          # the float32 draws of before
            u = u / u.norm(dim=-1, keepdim=True)
            for n in nodes:
                if n.requires_grad and not n.is_leaf:
                    n.retain_grad()
            (h * u).sum().backward()
        H = cfg.hidden_size
        for k in range(1, K + 1):
            g = nodes[K + 1 - k].grad                                         # [1, W*P, H]
            if g is None:
                continue
            est = (g[0].norm(dim=-1) * np.sqrt(H)).view(probes, -1)          # [P, W]
            per_window = est.pow(2).mean(0).sqrt()                            # RMS over probes
            rows.append({"layer": layer, "distance": k, "grad_norm": float(per_window.mean()),
                         "grad_norm_std": float(per_window.std()) if per_window.numel() > 1 else 0.0})
    return pd.DataFrame(rows)
