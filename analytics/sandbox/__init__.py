"""Untrusted SQL on the store: the one function the SQL console and ``rnnvis sql --sandbox`` call.

:func:`run_sandboxed` runs one read-only query against the store's views and
returns at most ``max_rows`` rows, or raises :class:`SandboxError` with a
message for the user. Defences, each enough for most attacks on its own:

1. **Statement check**, with DuckDB's own parser (never a regex): exactly one
   statement, of type SELECT (``SUMMARIZE``, ``DESCRIBE`` and ``SHOW`` parse
   as SELECT), without parameters. Its parse tree (``json_serialize_sql``) is
   walked: every table it reads must be a view of :mod:`analytics.schema`, a
   CTE of the query or ``information_schema``; every table function must be on
   :data:`ALLOWED_TABLE_FUNCTIONS` (``range``, ``unnest``, the ``duckdb_*``
   catalog listings, ...: no ``read_csv``, ``read_parquet``, ``glob``,
   ``read_text``, ``query`` ...); no scalar function of
   :data:`BLOCKED_FUNCTIONS` (``getenv``, ...) is called. So no COPY, EXPORT,
   ATTACH, INSTALL, LOAD, SET, PRAGMA, CALL, CREATE, INSERT, ... and no file
   or URL is named anywhere.
2. **Locked-down connection** (:func:`analytics.store.sandbox_connection`):
   an in-memory DuckDB with external access off, file access limited to the
   store's partition directories, extension auto-loading off, a memory limit,
   a thread count, no spilling to disk, and its configuration locked.
3. **A process of its own** (:mod:`analytics.sandbox.process`): the query runs in a
   child process whose address space is capped (``RLIMIT_AS``: what DuckDB's memory
   limit does not count, such as a 200-million-element list, fails there), at a
   lower priority, and killed ``GRACE_S`` (0.5) seconds after the time limit if DuckDB's
   own interrupt (at ``timeout_s``) has not stopped it. Nothing a query does can
   grow or stop the web worker.
4. **Caps on the result**: at most ``max_rows`` rows, ``max_cells`` cells (rows x
   columns) and about ``max_bytes`` bytes, counted as what the web process will
   build (:mod:`.rendered`: a NULL cell or a list element costs its text, though
   Arrow stores it in no bytes), in the query's process; the rows are streamed and
   fetching stops at the first cap (``truncated`` and the message say which).
5. **Concurrency caps** (:mod:`analytics.sandbox.slots`): at most ``per_user``
   queries of one user and ``total`` queries of the machine at once; one more is
   refused at once ("try again"), never queued.

The package: :mod:`.policy` (the statement check, limits, messages), :mod:`.process` (the child
process), :mod:`.slots` (concurrency caps), :mod:`.rendered` (what a row costs the web process), :mod:`.run`
(:func:`run_sandboxed`). It imports no DuckDB
itself: :mod:`analytics.store.engine` does that part.
"""
from __future__ import annotations

from analytics.sandbox.policy import (
    ALLOWED_TABLE_FUNCTIONS,
    BLOCKED_FUNCTIONS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_PER_USER,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOTAL,
    MAX_SQL_CHARS,
    SandboxError,
    SandboxResult,
    check_statement,
    default_threads,
    friendly_error,
    memory_bytes,
)
from analytics.sandbox.rendered import DEFAULT_MAX_CELLS
from analytics.sandbox.run import run_sandboxed

__all__ = ["SandboxError", "SandboxResult", "run_sandboxed", "check_statement", "friendly_error",
           "ALLOWED_TABLE_FUNCTIONS", "BLOCKED_FUNCTIONS", "DEFAULT_TIMEOUT_S", "DEFAULT_MAX_ROWS",
           "DEFAULT_MAX_BYTES", "DEFAULT_MAX_CELLS", "DEFAULT_MEMORY_LIMIT", "DEFAULT_PER_USER", "DEFAULT_TOTAL",
           "default_threads", "memory_bytes", "MAX_SQL_CHARS"]
