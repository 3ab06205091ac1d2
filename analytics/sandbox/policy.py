"""What a sandboxed query may do: the statement check, the limits and their messages.

See :mod:`analytics.sandbox` for the defences as a whole. This module imports no DuckDB: the store does that part.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics.schema import ADMIN_VIEWS, VIEWS
from analytics.store import engine as store

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SandboxError", "SandboxResult", "check_statement", "friendly_error", "limit_error", "precheck",
           "ALLOWED_TABLE_FUNCTIONS", "BLOCKED_FUNCTIONS", "DEFAULT_TIMEOUT_S", "DEFAULT_MAX_ROWS",
           "DEFAULT_MAX_BYTES", "DEFAULT_MEMORY_LIMIT", "DEFAULT_PER_USER", "DEFAULT_TOTAL", "default_threads",
           "memory_bytes", "MAX_SQL_CHARS"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 8 << 20
DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_PER_USER = 2
DEFAULT_TOTAL = 4
MAX_SQL_CHARS = 100_000

#: Table functions a query may call: they compute rows or list the catalog, and read no file.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest",
    "duckdb_views", "duckdb_columns", "duckdb_tables", "duckdb_functions", "duckdb_types", "duckdb_keywords",
    "duckdb_settings", "duckdb_schemas", "duckdb_databases", "duckdb_constraints",
    "pragma_table_info", "pragma_version",
})

#: Scalar functions a query may not call (environment, files, other databases).
BLOCKED_FUNCTIONS = frozenset({
    "getenv", "glob", "query", "query_table", "read_blob", "read_text", "load_extension", "install_extension",
    "checkpoint", "force_checkpoint", "current_setting", "enable_profiling",
})
_BLOCKED_PREFIXES = ("read_", "parquet_", "sniff_", "http", "iceberg_", "delta_", "sqlite_", "postgres_",
                     "mysql_", "duckdb_secret", "which_secret", "pragma_")

_ALLOWED_SCHEMAS = {"", "main"}
_ALLOWED_CATALOGS = {"", "memory"}
_CATALOG_SCHEMAS = {"information_schema"}


class SandboxError(Exception):
    """The query was refused or stopped; ``str(e)`` is a message for the user (no trace)."""

    def __init__(self, message: str, *, kind: str = "refused"):
        super().__init__(message)
        self.kind = kind  # "refused", "timeout", "memory", "busy", "error"


@dataclass(frozen=True)
class SandboxResult:
    """A query's result: ``frame`` (at most max_rows rows), whether rows were cut, time and a note.

    ``cut`` says which cap cut the rows: None, ``"rows"`` or ``"bytes"``.
    """

    frame: pd.DataFrame
    truncated: bool
    elapsed_s: float
    message: str
    cut: str | None = None


def default_threads() -> int:
    """DuckDB threads per console query: half the cores, at least 1 and at most 2 (a user's two queries at once
    then take at most every core at low priority, never more)."""
    return max(1, min(2, (os.cpu_count() or 1) // 2))


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(text: str | int) -> int:
    """``"1GB"``, ``"256MB"``, ``"1.5GiB"`` or a number of bytes, in bytes (units as DuckDB reads them)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]I?B|B)?\s*", str(text).upper())
    if not m:
        raise ValueError(f"not a memory size: {text!r} (e.g. 1GB, 512MB)")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


# --------------------------------------------------------------------------- statement check


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a parse tree, depth first."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            yield n
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)


def _function_blocked(name: str) -> bool:
    name = name.lower()
    return name in BLOCKED_FUNCTIONS or name.startswith(_BLOCKED_PREFIXES)


def _cte_names(nodes: list[dict[str, Any]]) -> set[str]:
    """The names the query's WITH clauses define (lower case); SandboxError for one that looks like a path."""
    ctes: set[str] = set()
    for n in nodes:
        cte_map = n.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map") or []:
                name = str(entry.get("key", ""))
                if not name or any(ch in name for ch in "/\\.:"):
                    raise SandboxError(f"CTE name {name!r} is not allowed: use a plain name")
                ctes.add(name.lower())
    return ctes


def _check_base_table(n: dict[str, Any], views: set[str], ctes: set[str]) -> None:
    """A table read: one of the store's views, a CTE or the information schema."""
    name = str(n.get("table_name", ""))
    schema = str(n.get("schema_name", "") or "").lower()
    catalog = str(n.get("catalog_name", "") or "").lower()
    if schema in _CATALOG_SCHEMAS and catalog in _ALLOWED_CATALOGS:
        return
    if schema not in _ALLOWED_SCHEMAS or catalog not in _ALLOWED_CATALOGS:
        shown = ".".join(filter(None, (catalog, schema, name)))
        raise SandboxError(f"only the store's views can be queried, not {shown!r}")
    if name.lower() in ADMIN_VIEWS and name.lower() not in views and name.lower() not in ctes:
        raise SandboxError(f"the {name.lower()} table is for admins only")
    if name.lower() not in views and name.lower() not in ctes:
        raise SandboxError(f"unknown view {name!r}: the console reads only the store's views "
                           f"({', '.join(VIEWS)}); files and URLs cannot be read")


def _check_table_function(n: dict[str, Any]) -> None:
    """A table function: one of ALLOWED_TABLE_FUNCTIONS, unqualified."""
    fn = n.get("function") or {}
    name = str(fn.get("function_name", "")).lower()
    if (str(fn.get("schema", "") or "").lower() not in _ALLOWED_SCHEMAS or name not in ALLOWED_TABLE_FUNCTIONS
            or str(fn.get("catalog", "") or "").lower() not in _ALLOWED_CATALOGS):
        raise SandboxError(f"table function {name}() is not allowed in the console (it may read files or "
                           f"other databases); allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}")


def _check_tree(tree: dict[str, Any], extra: Collection[str] = ()) -> None:
    nodes = list(_walk(tree.get("statements", [])))
    ctes = _cte_names(nodes)
    views = {v.lower() for v in VIEWS} | {v.lower() for v in extra}
    for n in nodes:
        kind = n.get("type")
        if kind == "BASE_TABLE":
            _check_base_table(n, views, ctes)
        elif kind == "TABLE_FUNCTION":
            _check_table_function(n)
        if n.get("class") == "FUNCTION" and n.get("type") == "FUNCTION":
            name = str(n.get("function_name", ""))
            if _function_blocked(name) and name.lower() not in ALLOWED_TABLE_FUNCTIONS:
                raise SandboxError(f"function {name}() is not allowed in the console")


def check_statement(con: Any, sql: str, extra: Collection[str] = ()) -> str:
    """Check ``sql`` (layer 1 of the sandbox) and return the one statement to run; SandboxError if refused.
    ``extra``: more tables it may read (an admin's :data:`~analytics.schema.ADMIN_VIEWS`)."""
    precheck(sql)
    try:
        statements = store.parse_statements(sql)
    except store.QueryError as e:
        raise SandboxError(str(e), kind="error") from None
    if not statements:
        raise SandboxError("the query is empty (only comments?)")
    if len(statements) > 1:
        raise SandboxError(f"one statement at a time, please (found {len(statements)})")
    st = statements[0]
    if st.type != "SELECT":
        raise SandboxError(f"only read-only queries (SELECT, WITH, FROM, SUMMARIZE, DESCRIBE) are allowed, "
                           f"not {st.type}")
    if st.parameters:
        raise SandboxError("parameters ($name, ?) are not supported: write the values into the query")
    try:
        tree = store.statement_ast(con, st.query)
    except store.QueryError as e:
        raise SandboxError(f"this form of query is not supported in the console ({e}); write it as a "
                           "plain SELECT (e.g. GROUP BY instead of PIVOT)") from None
    _check_tree(tree, extra)
    return st.query


# --------------------------------------------------------------------------- running


def friendly_error(e: store.QueryError, timeout_s: float, memory_limit: str) -> SandboxError:
    """A store error of a user's query as a SandboxError with a message for them."""
    if isinstance(e, store.QueryTimeout):
        return limit_error("timeout", timeout_s, memory_limit)
    if isinstance(e, store.QueryOutOfMemory):
        return limit_error("memory", timeout_s, memory_limit)
    if isinstance(e, store.QueryRefused):
        return SandboxError(f"Refused: {e}. The console reads only the store's views.")
    return SandboxError(str(e), kind="error")


def limit_error(kind: str, timeout_s: float, memory_limit: str) -> SandboxError:
    if kind == "timeout":
        return SandboxError(f"Time limit: the query ran longer than {timeout_s:g} s and was stopped. Filter "
                            "earlier (WHERE model_id = ..., layer = ...), aggregate, or add a LIMIT.", kind="timeout")
    return SandboxError(f"Memory limit: the query needed more than {memory_limit} and was stopped. Filter "
                        "earlier, aggregate, or avoid large joins, sorts and lists.", kind="memory")


def precheck(sql: str) -> None:
    if not isinstance(sql, str) or not sql.strip():
        raise SandboxError("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SandboxError(f"the query is longer than {MAX_SQL_CHARS:,} characters")
    if "\x00" in sql:
        raise SandboxError("the query contains a NUL character")


