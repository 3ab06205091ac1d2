"""The states of the same architecture with its initial random weights, at the probe's sampled tokens.

The untrained model is built from the trained one's config and seeded as training seeds it
(``torch.manual_seed(train seed)``, then :meth:`models.rnn.RecurrentModel.init_weights` with the training's
init scheme and range), so it has the weights training started from (on a CPU).

Its states come from a second, small trace: each sampled block (:mod:`.sample`) is read from zero state after
the ``warmup`` tokens before it, the blocks side by side.  Not the whole stream: a freshly initialised model
forgets its start within that warm-up (analytics/lm_trace.py measured a fresh 2x650 LSTM's warmed-up starts to
agree with the stream's to 1e-5), so these are its continuous-stream states to that tolerance, at a fraction of
a full trace's cost.  The trained model needs no second pass: its states are taken from the analysis' own
trace (:class:`analytics.token_states.TokenStateCollector` with ``positions``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from models.config import TrainConfig
from models.rnn import RecurrentModel

from .sample import ProbeSample

__all__ = ["untrained_model", "untrained_states"]

#: Time steps per trace call.
_CHUNK = 256


def untrained_model(model: RecurrentModel, train_config: dict[str, Any]) -> RecurrentModel:
    """``model``'s architecture with the weights its training started from (seeded as training seeds them)."""
    tc = TrainConfig.from_dict(train_config) if train_config else TrainConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        fresh = RecurrentModel(dataclasses.replace(model.cfg))
        fresh.init_weights(tc.init_range, tc.init)
    return fresh.to(model.head.weight.device).eval()


@torch.no_grad()
def untrained_states(model: RecurrentModel, stream: torch.Tensor, sample: ProbeSample,
                     keys: list[tuple[int, str]], warmup: int) -> torch.Tensor:
    """[K, P, H] float16: the states of ``keys`` at the sample's positions, each block read after ``warmup``."""
    H = model.cfg.hidden_size
    starts = [max(0, int(a) - warmup) for a, _ in sample.blocks]
    lengths = [int(b) - s for s, (_, b) in zip(starts, sample.blocks)]
    x = torch.zeros(max(lengths), len(starts), dtype=torch.long)                  # [T, M], zero-padded at the end
    for m, (s, n) in enumerate(zip(starts, lengths)):
        x[:n, m] = stream[s:s + n]
    block = torch.from_numpy(np.searchsorted(sample.blocks[:, 1], sample.positions, side="right"))
    step = torch.as_tensor(sample.positions) - torch.as_tensor(starts)[block]    # [P] row of each position
    out = torch.zeros(len(keys), len(sample.positions), H, dtype=torch.float16)
    state = None
    for t in range(0, x.shape[0], _CHUNK):
        packed = model.trace_packed(x[t:t + _CHUNK].to(model.head.weight.device), state, keys=keys)
        state = packed.state
        here = (step >= t) & (step < t + _CHUNK)
        rows = packed.values[(step[here] - t).to(packed.values.device), block[here].to(packed.values.device)]
        out[:, here] = rows.view(-1, len(keys), H).transpose(0, 1).to("cpu", torch.float16)
    return out
