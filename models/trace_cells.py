"""One layer of a gated cell traced over a chunk: every step's h, c and gates.

Two ways to get the same numbers (a test checks both against the fused
module step by step to 1e-5):

``loop`` (the CPU default): unroll the cell.  The input projection of all
steps is one matrix product (done by the caller, ``gi``); each step then does
one [B, H] x [H, G*H] product plus element-wise work on preallocated buffers,
written straight into the caller's packed output.  On a CPU this costs what
the fused forward costs (both do the same per-step products; the fused
kernel exposes neither the gates nor the per-step cell state), and
recomputing the gates afterwards would double the matrix work.

``fused`` (the CUDA default): a per-step loop is launch-bound on a GPU (the
issue measured 0.115x of cuDNN).  So run the layer's fused module (cuDNN) for
every step's h; then i, f, g, o (or z, r, n) at every step depend only on
x_t and h_(t-1), both known: one batched [T*B, H] x [H, G*H] product for all
steps.  The LSTM cell state is then the element-wise recurrence
c_t = f_t * c_(t-1) + i_t * g_t, one fused multiply-add per step and no
matrix product; a GRU needs no scan at all.

The weights come from ``RecurrentModel._cell_weights`` (transposed, the LSTM's
two biases summed and its g rows doubled, the GRU's gates reordered to z, r, n
and its n rows doubled).

Every tanh is computed as tanh(x) = 2 sigma(2x) - 1: for the LSTM one sigmoid
over all four gates and sigma(2c) for tanh(c); for the GRU's n gate a sigmoid.
The rows of the weights and biases that feed a tanh are doubled, which is exact
in floating point: every product and partial sum of the matrix product, and the
GRU's r * (W h + b), doubles exactly.  Torch's tanh is a vectorised Sleef
call whose cost depends on the CPU: measured with torch 2.13 on an AVX2
machine (AMD EPYC), 3.3 ns a value against 0.9 for sigmoid and 0.3 for a
multiply, so the identity cut the LSTM step's activations from ~140 to ~80 µs
(2x200, batch 64, torch's profiler) there; on an
AVX-512 machine tanh and sigmoid cost alike (0.25-0.37 ns), and the identity
costs a few cheap passes more.  The identity differs from tanh by a few float32
roundings (~1e-7 absolute), far below the 1e-5 a test allows against the fused
module.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .buffers import Workspace


def write_h(dst: Tensor, values: Tensor, prev: Tensor, deltas: bool) -> None:
    """dst [T, B, H] = values, or with ``deltas`` values minus the previous step's (prev [B, H] before step 0)."""
    if not deltas:
        dst.copy_(values)
        return
    torch.sub(values[0], prev, out=dst[0])
    torch.sub(values[1:], values[:-1], out=dst[1:])


def _gate_block(out: Tensor, cols: dict, names: str, H: int, ws: Workspace, shape: tuple[int, ...]) -> tuple[Tensor,
                                                                                                             bool]:
    """Where the gates go: straight into ``out`` when its gate columns are adjacent in order, else scratch."""
    gate_cols = [cols[g] for g in names]
    direct = gate_cols[0] is not None and gate_cols == [gate_cols[0] + k * H for k in range(len(names))]
    if direct:
        return out[..., gate_cols[0]:gate_cols[0] + len(names) * H], True
    return ws.get("gates", shape), False


def _copy_gates(out: Tensor, gates: Tensor, cols: dict, names: str, H: int) -> None:
    for k, name in enumerate(names):
        if cols[name] is not None:
            out[..., cols[name]:cols[name] + H].copy_(gates[..., k * H:(k + 1) * H])


# ---------------------------------------------------------------- step loops
def lstm_loop(w_hh_t: Tensor, gi: Tensor, h: Tensor, c: Tensor, hs: Tensor, out: Tensor, cols: dict,
              deltas: bool, ws: Workspace) -> Tensor:
    """gi [T, B, 4H]: input projections.  Fills hs [T, B, H] and the selected columns of out; returns the last c."""
    T, B, H = hs.shape
    gates, direct = _gate_block(out, cols, "ifgo", H, ws, (T, B, 4 * H))
    cs = ws.get("cs", (T, B, H))
    tmp = ws.get("tmp", (B, H))
    # Per-step work is kept to a few small ops (Python overhead matters at
    # H ~ 200): views are made once per call.  Δh/Δc are written inside
    # the loop, while h and c are still in cache (measured ~5% faster than
    # one bulk op over the chunk).
    d_c = out[..., cols["c"]:cols["c"] + H].unbind(0) if deltas and cols["c"] is not None else None
    d_h = out[..., cols["h"]:cols["h"] + H].unbind(0) if deltas and cols["h"] is not None else None
    minus_one = torch.full((), -1.0, dtype=hs.dtype, device=hs.device)
    for t, (gi_t, gt, c_new, h_new) in enumerate(zip(gi.unbind(0), gates.unbind(0), cs.unbind(0), hs.unbind(0))):
        pre = gi_t.addmm_(h, w_hh_t)                                       # [B, 4H]: i f 2g o pre-activations
        i, f, g, o = gt.split(H, dim=1)
        torch.sigmoid(pre, out=gt)                                         # i f σ(2g) o
        torch.add(minus_one, g, alpha=2, out=g)                            # g = tanh = 2σ(2g) − 1
        torch.mul(i, g, out=c_new).addcmul_(f, c)                          # c = f·c + i·g
        torch.mul(c_new, 2, out=tmp).sigmoid_()
        torch.add(minus_one, tmp, alpha=2, out=tmp)                        # tanh(c)
        torch.mul(o, tmp, out=h_new)                                       # h = o·tanh(c)
        if d_c is not None:
            torch.sub(c_new, c, out=d_c[t])
        if d_h is not None:
            torch.sub(h_new, h, out=d_h[t])
        h, c = h_new, c_new
    if not direct:
        _copy_gates(out, gates, cols, "ifgo", H)
    if not deltas:
        for name, values in (("c", cs), ("h", hs)):
            if cols[name] is not None:
                out[..., cols[name]:cols[name] + H].copy_(values)
    return c.clone()


def gru_loop(w_hh_t: Tensor, b_hh: Tensor, gi: Tensor, h: Tensor, hs: Tensor, out: Tensor, cols: dict,
             deltas: bool, ws: Workspace) -> None:
    """gi [T, B, 3H]: input projections.  Fills hs [T, B, H] and the selected columns of out (gates z, r, n)."""
    T, B, H = hs.shape
    gates, direct = _gate_block(out, cols, "zrn", H, ws, (T, B, 3 * H))
    gh = ws.get("gh", (B, 3 * H))
    gh_zr, gh_n = gh.split(2 * H, dim=1)
    tmp = ws.get("tmp", (B, H))
    d_h = out[..., cols["h"]:cols["h"] + H].unbind(0) if deltas and cols["h"] is not None else None
    minus_one = torch.full((), -1.0, dtype=hs.dtype, device=hs.device)
    for t, (gi_t, g, h_new) in enumerate(zip(gi.unbind(0), gates.unbind(0), hs.unbind(0))):
        torch.addmm(b_hh, h, w_hh_t, out=gh)                               # [B, 3H]: z r n
        gi_zr, gi_n = gi_t.split(2 * H, dim=1)
        zr, n = g.split(2 * H, dim=1)
        torch.add(gi_zr, gh_zr, out=zr).sigmoid_()
        z, r = zr.split(H, dim=1)
        torch.addcmul(gi_n, r, gh_n, out=n).sigmoid_()                     # σ(2 · n's argument): rows doubled
        torch.add(minus_one, n, alpha=2, out=n)                            # n = tanh = 2σ(2x) − 1
        torch.addcmul(n, z, torch.sub(h, n, out=tmp), out=h_new)          # (1 − z) n + z h
        if d_h is not None:
            torch.sub(h_new, h, out=d_h[t])
        h = h_new
    if not direct:
        _copy_gates(out, gates, cols, "zrn", H)
    if not deltas and cols["h"] is not None:
        out[..., cols["h"]:cols["h"] + H].copy_(hs)


# ------------------------------------------------ fused forward + reconstruction
def lstm_fused(core: torch.nn.Module, w_hh_t: Tensor, gi: Tensor, x: Tensor, h0: Tensor, c0: Tensor, hp: Tensor,
               out: Tensor, cols: dict, deltas: bool, ws: Workspace) -> Tensor:
    """Like :func:`lstm_loop`, from the fused module ``core`` (one layer, the same weights).

    x [T, B, E]: the layer's input; hp [T + 1, B, H] receives h0 then every step's h.  Returns the last c.
    """
    T1, B, H = hp.shape
    T = T1 - 1
    hp[0] = h0
    y, (_, c_n) = core(x, (h0[None].contiguous(), c0[None].contiguous()))  # y [T, B, H]: every step's h (cuDNN)
    hp[1:] = y
    if all(cols[name] is None for name in cols):                           # only the state is wanted (a warm-up)
        return c_n[0].clone()
    pre = gi.view(T * B, 4 * H).addmm_(hp[:-1].reshape(T * B, H), w_hh_t)  # all steps' gates at once
    gates = pre.view(T, B, 4 * H)
    gates.sigmoid_()                                                       # i f σ(2g) o
    gates[..., 2 * H:3 * H].mul_(2).sub_(1)                                # g = tanh = 2σ(2g) − 1
    i, f, g, _ = gates.split(H, dim=2)
    cs = ws.get("cp", (T + 1, B, H))
    cs[0] = c0
    torch.mul(i, g, out=cs[1:])                                            # i_t g_t for every step
    # The only sequential part, one fused multiply-add per step: c_t = f_t c_(t-1) + i_t g_t.
    for t in range(T):
        cs[t + 1].addcmul_(f[t], cs[t])
    _copy_gates(out, gates, cols, "ifgo", H)
    for name, values in (("c", cs), ("h", hp)):
        if cols[name] is not None:
            dst = out[..., cols[name]:cols[name] + H]
            torch.sub(values[1:], values[:-1], out=dst) if deltas else dst.copy_(values[1:])
    return cs[-1].clone()


def gru_fused(core: torch.nn.Module, w_hh_t: Tensor, b_hh: Tensor, gi: Tensor, x: Tensor, h0: Tensor, hp: Tensor,
              out: Tensor, cols: dict, deltas: bool, ws: Workspace) -> None:
    """Like :func:`gru_loop`, from the fused module ``core``; hp [T + 1, B, H] receives h0 then every step's h."""
    T1, B, H = hp.shape
    T = T1 - 1
    hp[0] = h0
    hp[1:] = core(x, h0[None].contiguous())[0]
    if all(cols[name] is None for name in cols):                           # only the state is wanted
        return
    gh = ws.get("gh", (T * B, 3 * H))
    torch.addmm(b_hh, hp[:-1].reshape(T * B, H), w_hh_t, out=gh)          # [T*B, 3H]: z r n, all steps
    gi2 = gi.view(T * B, 3 * H)
    gi2[:, :2 * H].add_(gh[:, :2 * H]).sigmoid_()                          # z r
    r = gi2[:, H:2 * H]
    gi2[:, 2 * H:].addcmul_(r, gh[:, 2 * H:]).sigmoid_().mul_(2).sub_(1)   # n = tanh = 2σ(2x) − 1 (rows doubled)
    _copy_gates(out, gi, cols, "zrn", H)
    if cols["h"] is not None:
        dst = out[..., cols["h"]:cols["h"] + H]
        torch.sub(hp[1:], hp[:-1], out=dst) if deltas else dst.copy_(hp[1:])
