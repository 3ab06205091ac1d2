"""One console query, one process: nothing a query does can reach the process that asked for it.

:func:`run_in_process` runs a query (a :class:`QueryRequest`) in a fresh child process and returns
its first rows as Arrow IPC bytes. The child comes from a ``multiprocessing`` fork server that has
imported DuckDB and pyarrow once (a fork costs a few ms, with no threads or open connections of
the web worker inherited); it:

1. lowers its priority (``nice`` 10: the dashboard's own requests come first on a busy machine),
   limits its CPU time (``RLIMIT_CPU``, a backstop) and asks to be killed if the fork server dies;
2. opens the store's views on a locked-down in-memory DuckDB (``memory_limit``, ``threads``, no
   spilling: :func:`analytics.store.engine.sandbox_connection`) through the store's private link;
3. caps its address space (``RLIMIT_AS``) at what it uses then plus ``address_space`` bytes, so an
   allocation that DuckDB's memory limit does not count (``range(200000000)`` in a list, a
   ``list_sort``) fails inside the child;
4. checks the statement (:func:`analytics.policy.check_statement`), runs it under DuckDB's own
   interrupt at ``timeout_s`` and streams at most ``max_rows`` rows, ``max_cells`` cells and about
   ``max_bytes`` bytes, counted as what the web process will build from them
   (:mod:`analytics.sandbox.rendered`: a NULL or a list element costs its text), into an Arrow IPC stream;
5. sends a JSON header (``{"status": "ok", "rows", "cut"}`` or ``{"status": "error", "kind",
   "message"}``) and the stream, and exits.

The parent waits at most ``timeout_s + GRACE_S`` seconds from the request, reads at most ``max_bytes`` (plus the
stream's framing), and kills the child at the deadline, whatever it is doing (a list function that
DuckDB cannot interrupt). Nothing the child sends is unpickled.
"""
from __future__ import annotations

import ctypes
import json
import math
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from analytics.sandbox import policy, rendered
from analytics.store import engine

__all__ = ["QueryRequest", "QueryOutcome", "run_in_process", "GRACE_S"]

#: Seconds past the time limit before the parent kills a query's process.
GRACE_S = 0.5
_HEADER_MAX = 1 << 20
_FRAMING = 1 << 20  # Arrow IPC metadata and padding on top of the column bytes

_CONTEXT: list[Any] = []  # the fork-server context, made on first use (one per process)
_CONTEXT_LOCK = threading.Lock()


@dataclass(frozen=True)
class QueryRequest:
    """What the child needs: plain values only (they cross a process boundary)."""

    root: str             # the store, as the child opens it (the private link)
    sql: str
    timeout_s: float
    max_rows: int
    max_bytes: int        # of the rows' rendered size (:mod:`analytics.sandbox.rendered`) and of their Arrow buffers
    max_cells: int        # rows x columns
    memory_limit: str     # DuckDB's memory_limit
    address_space: int    # bytes the child may add to its address space after opening the store
    threads: int
    tables: dict[str, bytes] = field(default_factory=dict)  # name -> Arrow IPC stream (an admin's audit table)


@dataclass(frozen=True)
class QueryOutcome:
    """The child's answer: ``status`` "ok" (``ipc``, ``rows``, ``cut``) or "error" (``kind``, ``message``)."""

    status: str
    ipc: bytes = b""
    rows: int = 0
    cut: str | None = None
    kind: str = ""
    message: str = ""


def _context() -> Any:
    with _CONTEXT_LOCK:
        if not _CONTEXT:
            ctx = mp.get_context("forkserver")
            # "__main__" first: children then skip re-importing the main script at every start (multiprocessing
            # does that for a child whose fork server has not imported it).
            ctx.set_forkserver_preload(["__main__", __name__, "duckdb", "pyarrow", "analytics.sandbox"])
            _CONTEXT.append(ctx)
        return _CONTEXT[0]


# --------------------------------------------------------------------------- the child


def _address_space_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _harden(req: QueryRequest) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the fork server
        libc.mallopt(-8, 2)            # M_ARENA_MAX: two malloc arenas, not 8 per core of address space
    except (OSError, AttributeError):
        pass
    os.nice(10)
    cpu = math.ceil(req.timeout_s * max(1, req.threads) + GRACE_S + 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _run(req: QueryRequest) -> tuple[dict[str, Any], bytes]:
    con = engine.sandbox_connection(req.root, memory_limit=req.memory_limit, threads=req.threads)
    limit = _address_space_now() + req.address_space
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for name, ipc in req.tables.items():  # in-memory tables of this connection only, before the check
        import pyarrow as pa
        con.register(name, pa.ipc.open_stream(ipc).read_all())
    try:
        statement = policy.check_statement(con, req.sql, extra=tuple(req.tables))
        try:
            ipc, rows, cut = engine.fetch_ipc(con, statement, max_rows=req.max_rows, max_bytes=req.max_bytes,
                                              max_cells=req.max_cells, row_cost=rendered.row_costs,
                                              timeout_s=req.timeout_s)
        except engine.QueryError as e:
            raise policy.friendly_error(e, req.timeout_s, req.memory_limit) from None
    except policy.SandboxError as e:
        return {"status": "error", "kind": e.kind, "message": str(e)}, b""
    return {"status": "ok", "rows": rows, "cut": cut}, ipc


def _child(conn: Connection, request: dict[str, Any]) -> None:
    payload = b""
    try:
        req = QueryRequest(**request)
        _harden(req)
        header, payload = _run(req)
    except MemoryError:
        header = {"status": "error", "kind": "memory", "message": "memory"}
    except BaseException as e:  # noqa: BLE001 - everything becomes a message for the parent
        header = {"status": "error", "kind": "error", "message": f"{type(e).__name__}: {e}"[:2000]}
    try:
        conn.send_bytes(json.dumps(header).encode())
        if payload:
            conn.send_bytes(payload)
        conn.close()
    finally:
        os._exit(0)  # no DuckDB teardown: the process is done


# --------------------------------------------------------------------------- the parent


def _receive(conn: Connection, deadline: float, maxlength: int) -> bytes | None:
    """The next message, or None at the deadline or when the child is gone."""
    remaining = deadline - time.monotonic()
    try:
        if remaining <= 0 or not conn.poll(remaining):
            return None
        return conn.recv_bytes(maxlength)
    except (EOFError, OSError):
        return None


def run_in_process(req: QueryRequest, started: float | None = None) -> QueryOutcome:
    """Run ``req`` in a child process, killed ``timeout_s + GRACE_S`` after ``started`` (a ``time.monotonic()``;
    default now). Never raises for the query's sake."""
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(writer, asdict(req)), daemon=True, name="rnnvis-sql")
    deadline = (time.monotonic() if started is None else started) + req.timeout_s + GRACE_S
    try:
        proc.start()
    finally:
        writer.close()
    outcome: QueryOutcome | None = None
    try:
        raw = _receive(reader, deadline, _HEADER_MAX)
        try:
            header = json.loads(raw) if raw is not None else None
        except ValueError:
            header = None
        if isinstance(header, dict) and header.get("status") == "ok":
            ipc = _receive(reader, deadline, req.max_bytes + _FRAMING)
            if ipc is not None:
                outcome = QueryOutcome("ok", ipc=ipc, rows=int(header.get("rows", 0)), cut=header.get("cut"))
        elif isinstance(header, dict) and header.get("status") == "error":
            outcome = QueryOutcome("error", kind=str(header.get("kind", "error")),
                                   message=str(header.get("message", "")))
    finally:
        reader.close()
        timed_out = outcome is None and time.monotonic() >= deadline
        proc.join(0.5 if outcome is not None else 0.05)  # it exits right after sending
        if proc.exitcode is None:
            proc.kill()
            proc.join(1)
    if outcome is not None:
        return outcome
    if timed_out or proc.exitcode == -signal.SIGXCPU:
        return QueryOutcome("error", kind="timeout", message="killed at the deadline")
    return QueryOutcome("error", kind="crash", message=f"the query's process ended with code {proc.exitcode}")
