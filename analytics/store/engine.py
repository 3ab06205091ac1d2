"""The DuckDB parts of the SQL sandbox: a locked-down connection, the parser, a bounded fetch.

The policy (which statements a user may run) is in :mod:`analytics.sandbox`. Imports nothing that loads
torch.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from analytics.schema import KINDS
from analytics.store.core import StoreError, store_root
from analytics.store.views import Engine, engine_for, retrying

_T = TypeVar("_T")
#: ``(batch, budget) -> int64 array``: what each row of the batch costs (see :func:`fetch_ipc`).
RowCost = Callable[[pa.RecordBatch, int], np.ndarray]



class QueryError(StoreError):
    """A user's query failed (syntax, unknown column, type error, ...); the message is DuckDB's."""


class QueryTimeout(QueryError):
    """The query ran past its time limit and was interrupted."""


class QueryOutOfMemory(QueryError):
    """The query needed more memory than the connection's ``memory_limit``."""


class QueryRefused(QueryError):
    """DuckDB refused an operation (file access outside the store, a locked setting, ...)."""


#: Settings whose values are paths on this machine (the store's, the home directory): the sandbox's
#: ``duckdb_settings()`` shows them as ``(hidden)``.
PATH_SETTINGS = ("allowed_directories", "allowed_paths", "home_directory", "secret_directory", "temp_directory",
                 "extension_directory", "custom_extension_repository", "autoinstall_extension_repository",
                 "log_query_path", "profiling_output", "custom_user_agent", "http_proxy")
_MASKED = ", ".join(f"'{name}'" for name in PATH_SETTINGS)
#: A table macro in ``main`` shadows the built-in ``duckdb_settings()`` (the sandbox refuses the
#: ``system`` catalog, where the original stays).
_SETTINGS_MACRO = (
    "CREATE MACRO duckdb_settings() AS TABLE SELECT * REPLACE ("
    f"CASE WHEN name IN ({_MASKED}) THEN '(hidden)' ELSE value END AS value, "
    f"CASE WHEN name IN ({_MASKED}) THEN NULL ELSE typed_value END AS typed_value) "
    "FROM system.main.duckdb_settings()"
)


def sandbox_connection(root: str | os.PathLike[str], *, memory_limit: str = "1GB",
                       threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A cursor for untrusted SQL: the store's views on a locked-down in-memory database.

    One such database per process, store root and limits (separate from :func:`connect`'s, so a
    user's query never competes for the dashboard's memory). It is created with extension
    auto-install/auto-load off, ``memory_limit`` and ``threads`` as given and no temporary
    directory (a query that outgrows the memory limit fails instead of spilling to disk), then
    file access is limited to the three partition directories (``models/``, ``sentences/``,
    ``jobs/``: not the store root, which also holds users, saved queries, uploads and
    checkpoints) with ``enable_external_access=false``, the views are created and the
    configuration is locked (no ``SET`` / ``RESET`` / ``PRAGMA`` can loosen a limit after that).
    ``duckdb_settings()`` (unqualified) shows :data:`PATH_SETTINGS` as ``(hidden)``.

    This layer alone does not stop DDL or ``COPY ... TO`` a path inside the partition
    directories: run only statements that :mod:`analytics.sandbox` has checked.
    """
    rootp = store_root(root)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    allowed = [rootp / k.name for k in KINDS.values()]
    config = {"memory_limit": str(memory_limit), "threads": threads, "temp_directory": "",
              "allow_community_extensions": False, "allow_persistent_secrets": False}

    def factory() -> Engine:
        engine = Engine(rootp, allowed=allowed, config=config)
        engine.con.execute(_SETTINGS_MACRO)
        return engine

    try:
        return engine_for(rootp, ("sandbox", str(memory_limit), threads), factory).cursor()
    except duckdb.Error as e:
        raise StoreError(f"could not open the store at {rootp}: {e}") from e


@dataclasses.dataclass(frozen=True)
class ParsedStatement:
    """One statement as DuckDB's parser split it: its type (``SELECT``, ``COPY``, ...) and text."""

    type: str
    query: str
    parameters: tuple[str, ...]


def parse_statements(sql: str) -> list[ParsedStatement]:
    """Split ``sql`` into statements with DuckDB's own parser (no execution).

    QueryError with the parser's message on a syntax error.
    """
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(str(e)) from e
    return [ParsedStatement(s.type.name, s.query, tuple(s.named_parameters)) for s in stmts]


def statement_ast(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of one SELECT statement as JSON (``json_serialize_sql``), not executed.

    QueryError when DuckDB cannot serialise it (only plain SELECT statements can be).
    """
    import json

    try:
        text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    except duckdb.Error as e:
        raise QueryError(str(e)) from e
    tree = json.loads(text)
    if tree.get("error"):
        raise QueryError(str(tree.get("error_message") or "the statement could not be parsed"))
    return tree


def fetch_limited(con: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int,
                  timeout_s: float) -> tuple[pa.Table, bool]:
    """Run ``sql`` and fetch at most ``max_rows`` rows: ``(table, truncated)``.

    A timer interrupts the connection after ``timeout_s`` seconds (QueryTimeout); DuckDB's
    out-of-memory becomes QueryOutOfMemory, its permission errors QueryRefused, and any other
    DuckDB error QueryError. Only ``max_rows + 1`` rows are ever fetched (``truncated`` says whether
    there were more). Use a connection of its own (a cursor) per call: the interrupt hits whatever
    runs on it.
    """
    def run() -> tuple[pa.Table, bool]:
        reader = con.sql(sql).to_arrow_reader(min(max_rows + 1, 65536))
        batches: list[pa.RecordBatch] = []
        n = 0
        for batch in reader:
            batches.append(batch)
            n += batch.num_rows
            if n > max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return table.slice(0, max_rows), n > max_rows

    return _bounded(con, run, timeout_s)


def _fit(batch: pa.RecordBatch, budget: int) -> pa.RecordBatch:
    """The longest head of ``batch`` whose buffers take at most ``budget`` bytes (maybe no rows)."""
    if batch.nbytes <= budget:
        return batch
    lo, hi = 0, batch.num_rows  # invariant: head of lo rows fits, head of hi rows does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if batch.slice(0, mid).nbytes <= budget:
            lo = mid
        else:
            hi = mid
    return batch.slice(0, lo)


def _head(batch: pa.RecordBatch, rows: int, budget: int, arrow_budget: int,
          row_cost: RowCost | None) -> tuple[pa.RecordBatch, int, bool]:
    """The longest head of ``batch``, at most ``rows`` rows, whose rows cost at most ``budget`` by ``row_cost``
    and whose buffers take at most ``arrow_budget`` bytes: ``(head, its cost, cut by bytes)``."""
    n = max(0, min(rows, batch.num_rows))
    costs = np.cumsum(row_cost(batch.slice(0, n), budget)) if row_cost is not None and n else np.zeros(n, np.int64)
    fit = int(np.searchsorted(costs, budget, side="right"))
    head = _fit(batch.slice(0, fit), arrow_budget)
    spent = int(costs[head.num_rows - 1]) if head.num_rows else 0
    return head, spent, head.num_rows < n


def fetch_ipc(con: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int, max_bytes: int,
              timeout_s: float, batch_rows: int = 2048, max_cells: int | None = None,
              row_cost: RowCost | None = None) -> tuple[bytes, int, str | None]:
    """Run ``sql`` and write its first rows as an Arrow IPC stream: ``(stream bytes, rows, cut)``.

    At most ``max_rows`` rows, ``max_cells`` cells (rows x columns) and about ``max_bytes`` bytes are kept,
    bytes counted both as column data and, with ``row_cost`` (``(batch, budget) -> cost of each row``), as
    what the rows cost to render: the rows are fetched ``batch_rows`` at a time and fetching stops at the
    first batch that would pass a cap (the part of it that fits is kept). ``cut`` is None when every row was
    kept, else ``"rows"``, ``"cells"`` or ``"bytes"``: the cap that stopped it. Time limit and errors as
    :func:`fetch_limited`.
    """
    def run() -> tuple[bytes, int, str | None]:
        reader = con.sql(sql).to_arrow_reader(batch_rows)
        sink = pa.BufferOutputStream()
        n, spent, cut = 0, 0, None
        cell_rows = max_rows if max_cells is None else max_cells // max(1, len(reader.schema))
        with pa.ipc.new_stream(sink, reader.schema) as writer:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                rows = min(max_rows, cell_rows) - n
                if rows < batch.num_rows:
                    cut = "rows" if max_rows <= cell_rows else "cells"
                head, cost, by_bytes = _head(batch, rows, max_bytes - spent, max_bytes - sink.tell(), row_cost)
                if by_bytes:
                    cut = "bytes"
                if head.num_rows:
                    writer.write_batch(head)
                    n, spent = n + head.num_rows, spent + cost
                if cut:
                    break
        return sink.getvalue().to_pybytes(), n, cut

    return _bounded(con, run, timeout_s)


def _bounded(con: duckdb.DuckDBPyConnection, run: Callable[[], _T], timeout_s: float) -> _T:
    """``run()`` under a timer that interrupts ``con`` after ``timeout_s`` s, errors as Query* exceptions."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        return retrying(run)
    except duckdb.InterruptException as e:
        if fired.is_set():
            raise QueryTimeout(f"the query ran longer than {timeout_s:g} s and was stopped") from e
        raise QueryError(str(e)) from e
    except duckdb.OutOfMemoryException as e:
        raise QueryOutOfMemory(str(e)) from e
    except duckdb.PermissionException as e:
        raise QueryRefused(str(e)) from e
    except duckdb.Error as e:
        if fired.is_set():  # interrupted while DuckDB was raising something else
            raise QueryTimeout(f"the query ran longer than {timeout_s:g} s and was stopped") from e
        raise QueryError(str(e)) from e
    except (pa.ArrowException, OSError) as e:  # raised by the Arrow stream, e.g. OSError("INTERRUPT")
        if fired.is_set():
            raise QueryTimeout(f"the query ran longer than {timeout_s:g} s and was stopped") from e
        if isinstance(e, pa.ArrowMemoryError):
            raise QueryOutOfMemory(str(e)) from e
        raise QueryError(str(e)) from e
    except MemoryError as e:
        raise QueryOutOfMemory("out of memory") from e
    finally:
        timer.cancel()
