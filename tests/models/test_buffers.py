"""Scratch buffers: populated mappings hold what is written to them, in the shape and type asked for."""
from __future__ import annotations

import torch

from models.buffers import POPULATE_BYTES, Workspace, lazy_zeros, populated_empty


def test_populated_buffer_is_a_writable_tensor_of_the_shape_and_type_asked_for():
    for dtype in (torch.float16, torch.float32, torch.float64, torch.int64):
        shape = (POPULATE_BYTES // 8 + 3, 5)                               # above the threshold for every dtype
        t = populated_empty(shape, dtype)
        assert t.shape == shape and t.dtype == dtype and t.is_contiguous()
        t.copy_(torch.arange(t.numel()).view(shape).to(dtype))
        assert torch.equal(t[-1], torch.arange(t.numel() - 5, t.numel()).to(dtype))


def test_small_buffers_and_other_types_fall_back_to_torch_empty():
    assert populated_empty((3, 4)).shape == (3, 4)
    assert populated_empty((POPULATE_BYTES, 2), torch.bool).dtype == torch.bool


def test_workspace_reuses_a_populated_buffer_for_smaller_requests():
    ws = Workspace("cpu")
    a = ws.get("values", (64, POPULATE_BYTES // 64))
    a.fill_(2.0)
    b = ws.get("values", (8, 100))
    assert b.data_ptr() == a.data_ptr() and (b == 2.0).all()


def test_lazy_zeros_reads_zero_where_nothing_was_written():
    t = lazy_zeros((1000, 300), torch.float64)
    t[7] = 1.5
    assert t.sum().item() == 1.5 * 300
