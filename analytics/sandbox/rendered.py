"""What a console result will cost the web process that shows it: each row's rendered size, counted in the
query's own process (where its memory limit applies), before the row is sent.

The console's byte caps count this, not Arrow's buffers: a NULL costs nothing in Arrow, but it is a cell of
the grid's JSON (``"c12":null,``), a pointer in a pandas object column and a field of the CSV; a list of
30 M NULLs is 30 M elements once rendered. A cell costs :data:`CELL` bytes plus the text of its value:

- NULL: :data:`NULL` (``null``), at any depth;
- a number, boolean, date or time: the widest text of its type (an int64 20, a double 24, ...);
- a string its UTF-8 bytes, quotes (escaped in a list) and 5 more per character JSON escapes (a control
  character, a quote, a backslash); binary twice its bytes (the grid shows hex);
- a list (or map, or fixed-size list): brackets plus each element's cost and :data:`ELEMENT` between them;
- a struct: braces plus each field's name, quotes and value; a union its member's value;
- a type it cannot price (none that the sandbox's DuckDB returns): more than the budget, so it is never sent.

Work and memory here are bounded by the budget, whatever the rows hold: once the elements of a list column
cannot fit in the budget even at the least an element costs (:data:`MIN_ELEMENT`), the rest are not priced
one by one and the rows holding them cost ``budget + 1`` (they would not fit anyway).

Hand-written: no library estimates the rendered size of an Arrow array without rendering it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DEFAULT_MAX_CELLS", "CELL", "ELEMENT", "NULL", "MIN_ELEMENT", "row_costs", "value_costs"]

#: The default cap on a result's cells (rows x columns): a grid of 10,000 rows of 30 columns.
DEFAULT_MAX_CELLS = 300_000
CELL = 16         # a cell's key and separators in the grid's JSON ("c1234": ..., ); a pointer in pandas
ELEMENT = 2       # ", " between the elements of a list
NULL = 4          # "null"
MIN_ELEMENT = ELEMENT + 1  # the least a list element costs: one digit and its separator
_OTHER = 64       # an interval: pandas shows a DateOffset
_ESCAPED = r'[\x00-\x1f"\\]'  # characters JSON writes as an escape sequence
_INT_TEXT = {8: 4, 16: 6, 32: 11, 64: 20}


def _fixed(t: pa.DataType) -> int | None:
    """The widest text of a value of a fixed-width type; None for other types."""
    if pa.types.is_null(t):
        return NULL
    if pa.types.is_boolean(t):
        return 5
    if pa.types.is_integer(t):
        return _INT_TEXT[t.bit_width]
    if pa.types.is_floating(t):
        return 24
    if pa.types.is_decimal(t):
        return t.precision + 5  # sign, point, quotes
    if pa.types.is_temporal(t) and not pa.types.is_interval(t):
        return 40  # a quoted ISO date, time, timestamp or duration
    return None


def _lengths(arr: pa.Array) -> np.ndarray:
    return pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(element bounds of each row, from 0; the child elements those bounds index) of a list-like array."""
    t = arr.type
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        return np.arange(len(arr) + 1, dtype=np.int64) * size, arr.values.slice(arr.offset * size, len(arr) * size)
    offsets = arr.offsets.to_numpy().astype(np.int64)
    child = pa.StructArray.from_arrays([arr.keys, arr.items], ["key", "value"]) if pa.types.is_map(t) else arr.values
    return offsets - offsets[0], child.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _list_costs(arr: pa.Array, budget: int) -> np.ndarray:
    bounds, child = _list_parts(arr)
    priced = min(len(child), budget // MIN_ELEMENT + 1)  # past this many elements nothing fits
    each = value_costs(child.slice(0, priced), budget) + ELEMENT
    cum = np.concatenate([[0], np.cumsum(each)])
    ends = bounds[1:]
    inside = ends <= priced
    costs = np.full(len(arr), budget + 1, dtype=np.int64)
    costs[inside] = 2 + cum[ends[inside]] - cum[bounds[:-1][inside]]
    return costs


def _struct_costs(arr: pa.StructArray, budget: int) -> np.ndarray:
    costs = np.full(len(arr), 2, dtype=np.int64)
    for f, values in zip(arr.type, arr.flatten()):
        costs += len(f.name.encode()) + 8 + value_costs(values, budget)
    return costs


def _union_buffers(arr: pa.UnionArray) -> tuple[np.ndarray, np.ndarray | None]:
    """(type code, dense offset or None) of each row of a union, read from its buffers at its own offset
    (pyarrow's ``type_codes`` and ``offsets`` ignore a slice's offset)."""
    bufs, span = arr.buffers(), slice(arr.offset, arr.offset + len(arr))
    codes = np.frombuffer(bufs[1], dtype=np.int8)[span]
    if arr.type.mode != "dense":
        return codes, None
    return codes, np.frombuffer(bufs[2], dtype=np.int32)[span].astype(np.int64)


def _union_costs(arr: pa.UnionArray, budget: int) -> np.ndarray:
    """Each row costs its own member's value: a sparse union's members are as long as it, a dense one's are
    indexed by its offsets."""
    codes, offsets = _union_buffers(arr)
    costs = np.full(len(arr), NULL, dtype=np.int64)
    for i, code in enumerate(arr.type.type_codes):
        rows = codes == code
        if not rows.any():
            continue
        if offsets is None:
            costs[rows] = value_costs(arr.field(i), budget)[rows]
            continue
        at = offsets[rows]
        lo = int(at.min())
        costs[rows] = value_costs(arr.field(i).slice(lo, int(at.max()) + 1 - lo), budget)[at - lo]
    return costs


def _non_null_costs(arr: pa.Array, budget: int) -> np.ndarray:
    t = arr.type
    fixed = _fixed(t)
    if fixed is not None:
        return np.full(len(arr), fixed, dtype=np.int64)
    if pa.types.is_dictionary(t):
        return value_costs(arr.dictionary_decode(), budget)
    if isinstance(arr, pa.ExtensionArray):
        return value_costs(arr.storage, budget)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        escapes = pc.count_substring_regex(arr, _ESCAPED).fill_null(0).to_numpy(zero_copy_only=False)
        return 4 + _lengths(arr) + 5 * escapes.astype(np.int64)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return 4 + 2 * _lengths(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_map(t):
        return _list_costs(arr, budget)
    if pa.types.is_struct(t):
        return _struct_costs(arr, budget)
    if pa.types.is_union(t):
        return _union_costs(arr, budget)
    if pa.types.is_interval(t):
        return np.full(len(arr), _OTHER, dtype=np.int64)
    return np.full(len(arr), budget + 1, dtype=np.int64)  # a type this module cannot price is never sent


def value_costs(arr: pa.Array, budget: int) -> np.ndarray:
    """The rendered bytes of each value of ``arr`` (int64), capped at ``budget + 1``."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    costs = _non_null_costs(arr, budget)
    if arr.null_count:
        costs = np.where(arr.is_valid().to_numpy(zero_copy_only=False), costs, NULL)
    return np.minimum(costs, budget + 1)


def row_costs(batch: pa.RecordBatch, budget: int) -> np.ndarray:
    """The rendered bytes of each row of ``batch`` (int64): :data:`CELL` and its value per cell; a row that
    alone passes ``budget`` costs more than ``budget`` (not necessarily its full price)."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        total += CELL + value_costs(column, budget)
    return total
