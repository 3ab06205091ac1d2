"""Sentence glyph measures and classifier explanations (docs/architecture.md, "Sentence glyphs").

For unit cluster H_i and step t (h the chosen layer and state, h(0) the start state):
  aggregate  α+ = Σ_{u∈H_i, h_u>0} h_u,  α− = Σ_{u∈H_i, h_u<0} h_u   (drawn divided by |H_i|)
  updated    Δα+ = α+(t) − α+(t−1),       Δα− = α−(t) − α−(t−1)
  preserved  β = Σ_{u∈H_i} |h_u(t−1)| · min(1, max(0, h_u(t)/h_u(t−1))),
             drawn as β / (α+(t−1) − α−(t−1))
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def glyph_measures(states: np.ndarray, unit_labels: np.ndarray, h0: np.ndarray | None = None) -> pd.DataFrame:
    """states [T, H] of one layer/state over a sentence; unit_labels [H] cluster of each unit.

    Returns one row per (position, cluster): position, cluster, size, alpha_pos, alpha_neg (both divided by
    the cluster size), d_alpha_pos, d_alpha_neg (divided by the size too), preserved (β ratio in [0, 1],
    NaN at a step whose previous state is all zero).
    """
    states = np.asarray(states, dtype=np.float64)
    T, H = states.shape
    prev = np.vstack([np.zeros((1, H)) if h0 is None else np.asarray(h0, np.float64)[None], states[:-1]])
    k = int(unit_labels.max()) + 1
    onehot = np.zeros((H, k))
    onehot[np.arange(H), unit_labels] = 1.0                                       # [H, k]
    size = onehot.sum(0)                                                          # [k]
    a_pos, a_neg = np.clip(states, 0, None) @ onehot, np.clip(states, None, 0) @ onehot   # [T, k]
    p_pos, p_neg = np.clip(prev, 0, None) @ onehot, np.clip(prev, None, 0) @ onehot
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(prev != 0, states / prev, 0.0)
        kept = (np.abs(prev) * np.clip(ratio, 0.0, 1.0)) @ onehot                 # β [T, k]
        denom = p_pos - p_neg
        preserved = np.where(denom > 0, kept / denom, np.nan)
    safe = np.where(size > 0, size, 1)
    pos, clus = np.meshgrid(np.arange(T), np.arange(k), indexing="ij")
    return pd.DataFrame({
        "position": pos.ravel(), "cluster": clus.ravel(), "size": np.broadcast_to(size, (T, k)).ravel().astype(int),
        "alpha_pos": (a_pos / safe).ravel(), "alpha_neg": (a_neg / safe).ravel(),
        "d_alpha_pos": ((a_pos - p_pos) / safe).ravel(), "d_alpha_neg": ((a_neg - p_neg) / safe).ravel(),
        "preserved": preserved.ravel(),
    })


def class_contributions(h: np.ndarray, head_weight: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """Word t's contribution u_iᵀΔh_t to class i: h [T, H] last-layer states, head_weight [C, H] -> [T, C].

    p_i ∝ exp(u_iᵀ h_T) = Π_t exp(u_iᵀ Δh_t), so the contributions of all words sum to u_iᵀ (h_T − h_0).
    """
    h = np.asarray(h, np.float64)
    prev = np.vstack([np.zeros((1, h.shape[1])) if h0 is None else np.asarray(h0, np.float64)[None], h[:-1]])
    return (h - prev) @ np.asarray(head_weight, np.float64).T
