"""Arrow schemas of the views and conversion of frames to them (see :mod:`analytics.store`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.schema import VIEWS, View
from analytics.store.core import SchemaMismatchError

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}


# --------------------------------------------------------------------------- schema conversion


def arrow_schema(view_name: str) -> pa.Schema:
    """The Arrow schema files of ``view_name`` are written with."""
    v = VIEWS[view_name]
    return pa.schema([pa.field(c.name, pa.float16() if c.name in v.half else _ARROW_TYPES[c.type])
                      for c in v.columns])


def to_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got {type(data).__name__}")


def conform(view: View, data: Any) -> pa.Table:
    """Check ``data`` against the view's columns and cast it to the file schema."""
    table = to_arrow(data)
    names = table.column_names
    expected = view.column_names
    missing = [c for c in expected if c not in names]
    if missing:
        raise SchemaMismatchError(
            f"{view.name}: missing column(s) {', '.join(missing)}; expected columns: {', '.join(expected)}"
        )
    unknown = [c for c in names if c not in expected]
    if unknown:
        raise SchemaMismatchError(
            f"{view.name}: unknown column(s) {', '.join(unknown)}; expected columns: {', '.join(expected)}"
        )
    if len(set(names)) != len(names):
        raise SchemaMismatchError(f"{view.name}: duplicate column names in {names}")
    arrays = []
    for col in view.columns:
        arr = table.column(col.name)
        target = _ARROW_TYPES[col.type]
        if arr.type != target:
            try:
                if pa.types.is_dictionary(arr.type):
                    arr = arr.cast(arr.type.value_type)
                if pa.types.is_timestamp(arr.type) and pa.types.is_timestamp(target):
                    # tz-aware -> naive keeps UTC wall time; ns -> us truncates.
                    arr = pc.cast(arr, target, safe=False)
                else:
                    arr = pc.cast(arr, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise SchemaMismatchError(
                    f"{view.name}.{col.name}: cannot store {table.column(col.name).type} as {col.type}: {e}"
                ) from e
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(view.name))



def parquet_bytes(data: Any) -> bytes:
    """A pandas DataFrame or Arrow table as the bytes of one Parquet file (for downloads)."""
    sink = pa.BufferOutputStream()
    pq.write_table(to_arrow(data), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
