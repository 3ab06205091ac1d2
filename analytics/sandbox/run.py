"""Run one untrusted query: a slot, a child process, the answer as a frame (see :mod:`analytics.sandbox`)."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

import pyarrow as pa

from analytics.sandbox import slots
from analytics.sandbox.policy import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_PER_USER,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOTAL,
    SandboxError,
    SandboxResult,
    default_threads,
    limit_error,
    memory_bytes,
    precheck,
)
from analytics.sandbox.process import QueryRequest, run_in_process
from analytics.sandbox.rendered import DEFAULT_MAX_CELLS

__all__ = ["run_sandboxed"]

log = logging.getLogger(__name__)


def run_sandboxed(store_root: str | os.PathLike[str], sql: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  max_rows: int = DEFAULT_MAX_ROWS, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_cells: int = DEFAULT_MAX_CELLS, memory_limit: str = DEFAULT_MEMORY_LIMIT,
                  address_space: str | int | None = None,
                  threads: int | None = None, user: str | None = None, per_user: int = DEFAULT_PER_USER,
                  total: int = DEFAULT_TOTAL, tables: Mapping[str, pa.Table] | None = None) -> SandboxResult:
    """Run one read-only query on the store's views, bounded in time, memory, rows, bytes and concurrency.

    The query runs in a process of its own (:mod:`analytics.sandbox.process`): DuckDB gets
    ``memory_limit`` and ``threads``; the process may grow its address space by ``address_space``
    (default: the memory limit plus half of it, at least 256 MB more) and is killed ``timeout_s`` + 0.5 s
    after this call began. At most ``max_rows`` rows, ``max_cells`` cells and about ``max_bytes`` bytes come back,
    bytes counted as what this process builds from them (:mod:`analytics.sandbox.rendered`), in the child. A query of
    ``user`` needs one of their ``per_user`` slots and one of the machine's ``total`` slots.

    Raises SandboxError (with a message for the user, ``kind`` one of refused/timeout/memory/busy/error)
    when the query is not allowed, fails, or hits a limit. ``truncated`` is True (and ``message`` says
    so) when the query returned more than was kept.

    ``tables``: in-memory tables the query may read besides the store's views, by name (the caller decides
    who gets them: an admin's ``audit``); they cross to the query's process as Arrow IPC streams.
    """
    if timeout_s <= 0 or max_rows < 0 or max_bytes <= 0 or max_cells <= 0:
        raise ValueError("timeout_s, max_bytes and max_cells must be positive and max_rows non-negative")
    limit = memory_bytes(memory_limit)
    space = memory_bytes(address_space) if address_space is not None else limit + max(256 << 20, limit // 2)
    t0, started = time.perf_counter(), time.monotonic()  # the deadline counts from here
    precheck(sql)
    try:
        with slots.query_slot(store_root, user, per_user=per_user, total=total):
            req = QueryRequest(root=str(slots.store_link(store_root)), sql=sql, timeout_s=float(timeout_s),
                               max_rows=int(max_rows), max_bytes=int(max_bytes),
                               max_cells=int(max_cells), memory_limit=str(memory_limit),
                               address_space=int(space), threads=int(threads or default_threads()),
                               tables={n: _ipc(t) for n, t in (tables or {}).items()})
            out = run_in_process(req, started)
    except slots.SlotsBusy as e:
        raise SandboxError(str(e), kind="busy") from None
    if out.status != "ok":
        if out.kind in ("timeout", "memory", "crash"):
            err = limit_error("timeout" if out.kind == "timeout" else "memory", timeout_s, memory_limit)
        else:
            err = SandboxError(out.message, kind=out.kind if out.kind in ("refused", "error") else "error")
        log.info("sandboxed query stopped (%s): %s", out.kind, out.message)
        raise err
    table = pa.ipc.open_stream(out.ipc).read_all()
    try:
        frame = table.to_pandas()
    except pa.ArrowNotImplementedError:  # a column pandas has no type for: a UNION
        odd = ", ".join(f.name for f in table.schema if "union" in str(f.type)) or "one of them"
        raise SandboxError(f"The result has a UNION column ({odd}) that this console cannot show. Cast it to "
                           "text, e.g. SELECT u::VARCHAR AS u.", kind="error") from None
    elapsed = time.perf_counter() - t0
    return SandboxResult(frame, out.cut is not None, elapsed, _message(out.cut, len(frame), elapsed, max_rows,
                                                                       max_bytes, max_cells), out.cut)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _message(cut: str | None, rows: int, elapsed: float, max_rows: int, max_bytes: int, max_cells: int) -> str:
    if cut == "bytes":
        return (f"Size limit: showing the first {rows:,} rows (about {max_bytes / 2**20:.0f} MB); the result "
                "is larger. Select fewer or narrower columns, aggregate, or add a LIMIT.")
    if cut == "cells":
        return (f"Size limit: showing the first {rows:,} rows (at most {max_cells:,} cells); the result is "
                "larger. Select fewer columns, aggregate, or add a LIMIT.")
    if cut == "rows":
        return (f"Row limit: showing the first {max_rows:,} rows; the query returned more. Add a LIMIT or "
                "aggregate to see the rest.")
    return f"{rows:,} rows in {elapsed:.2f} s"
