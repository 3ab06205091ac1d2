"""Reading: the views over the Parquet globs and the per-process engine (see :mod:`analytics.store`).

Imports nothing that loads torch (the SQL sandbox's processes use it).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from analytics.schema import KINDS, VIEWS, View
from analytics.store.core import StoreError, quote_ident, store_root

log = logging.getLogger("analytics.store")


def _view_sql(root: Path, view: View) -> str:
    """SELECT over the view's Parquet glob, with the schema's columns and types."""
    kind = KINDS[view.kind]
    glob = f"{root}/{kind.name}/{kind.key}=*/{view.name}.*.parquet"
    source = (
        f"read_parquet({quote_ident(glob)}, union_by_name = true, hive_partitioning = true, "
        f"hive_types = {{'{kind.key}': 'VARCHAR'}}, allow_empty = true)"
    )
    # The empty typed relation gives every column its type when no file matches
    # (allow_empty then yields no columns we use), and NULLs for a column that
    # no file has yet (one appended to the schema after the files were written).
    typed_nulls = ", ".join(f"NULL::{c.type} AS {c.name}" for c in view.columns)
    casts = ", ".join(f"CAST({c.name} AS {c.type}) AS {c.name}" for c in view.columns)
    return f"SELECT {casts} FROM (FROM {source} UNION ALL BY NAME SELECT {typed_nulls} WHERE false)"


def _view_statements(root: Path, create: str) -> dict[str, str]:
    return {v.name: f"{create} {v.name} AS {_view_sql(root, v)}" for v in VIEWS.values()}


_VIEWS_SQL = (
    "SELECT view_name, sql FROM duckdb_views() "
    "WHERE database_name = 'memory' AND schema_name = 'main' AND NOT internal"
)


class Engine:
    """One process-wide, sandboxed in-memory DuckDB per store root.

    It holds the views in its ``main`` schema and :func:`connect` hands out
    cursors on it. The views never change (their globs are evaluated at
    every query); before each hand-out they are checked and any view that
    was dropped or replaced through a cursor is re-created.
    """

    def __init__(self, root: Path, *, allowed: Sequence[Path] | None = None,
                 config: Mapping[str, Any] | None = None):
        self.root = root
        self.lock = threading.Lock()
        self.con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "enable_external_file_cache": False,  # no cached bytes of deleted versions
                **(config or {}),
            },
        )
        dirs = [root] if allowed is None else list(allowed)
        self.con.execute(f"SET allowed_directories = [{', '.join(quote_ident(str(d) + os.sep) for d in dirs)}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")
        self.statements = _view_statements(root, "CREATE OR REPLACE VIEW")
        self.installed: dict[str, str] = {}  # view -> DuckDB's stored SQL after we created it

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self.lock:
            current = dict(self.con.execute(_VIEWS_SQL).fetchall())
            stale = [name for name in self.statements if current.get(name) != self.installed.get(name, "")]
            if stale:
                sql = ";\n".join(self.statements[name] for name in stale)
                retrying(lambda: self.con.execute(sql))
                current = dict(self.con.execute(_VIEWS_SQL).fetchall())
                self.installed.update({name: current[name] for name in stale})
            return self.con.cursor()


_ENGINES: dict[tuple[Any, ...], Engine] = {}
_ENGINES_LOCK = threading.Lock()
_MAX_ENGINES = 8


def engine_for(root: Path, variant: tuple[Any, ...] = (), factory: Callable[[], Engine] | None = None) -> Engine:
    key = (os.getpid(), root, *variant)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            for k in [k for k in _ENGINES if k[0] != key[0]]:  # inherited through fork: unusable
                del _ENGINES[k]
            while len(_ENGINES) >= _MAX_ENGINES:  # open cursors keep an evicted engine alive
                del _ENGINES[next(iter(_ENGINES))]
            engine = _ENGINES[key] = factory() if factory is not None else Engine(root)
    return engine


def connect(root: str | os.PathLike[str], *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the store.

    Every view of :mod:`analytics.schema` exists with its exact columns and
    types, also on an empty store. The globs are evaluated at every query, so
    a connection sees partitions committed and deleted after it was opened.

    ``read_only=True`` (the app, per request; about 1 ms): a cursor on a
    process-wide in-memory database whose file access is limited to the
    store root (``enable_external_access=false`` + ``allowed_directories``),
    with extension auto-loading off and its configuration locked. The views
    live in that shared database: run only SELECT statements on it (a SQL
    console must reject anything else; COPY ... TO a path inside the store
    would be allowed). Temp tables and temp views are private to the cursor.
    ``read_only=False``: a private, unrestricted in-memory database (may read
    other files, register frames, COPY out, create tables); it costs a new
    DuckDB instance (15-30 ms).

    Close the connection when done (``with connect(root) as con:`` works).
    """
    rootp = store_root(root)
    try:
        if read_only:
            return engine_for(rootp).cursor()
        con = duckdb.connect(":memory:")
        try:
            sql = ";\n".join(_view_statements(rootp, "CREATE OR REPLACE VIEW").values())
            retrying(lambda: con.execute(sql))
        except BaseException:
            con.close()
            raise
        return con
    except duckdb.Error as e:
        raise StoreError(f"could not open the store at {rootp}: {e}") from e


_TRANSIENT = ("No such file or directory", "Cannot open file")
_T = TypeVar("_T")


def retrying(fn: Callable[[], _T], retries: int = 3) -> _T:
    """Call ``fn``, retrying when a file it listed vanished before it was read."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except duckdb.IOException as e:
            if attempt == retries or not any(t in str(e) for t in _TRANSIENT):
                raise
            log.debug("retrying after transient store error: %s", e)
            time.sleep(random.uniform(0.01, 0.03) * 2**attempt)
    raise AssertionError("unreachable")


def query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    retries: int = 3,
) -> pd.DataFrame:
    """Run ``sql`` (with ``?`` or ``$name`` parameters) and return a DataFrame.

    A query that races with the replacement or deletion of a partition (a
    file listed by the glob vanishes before it is read) is retried
    ``retries`` times.
    """
    return retrying(lambda: con.execute(sql, params).df(), retries)
