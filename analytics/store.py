"""The store: Parquet partitions on disk, DuckDB views on top.

This is the only module that writes Parquet or talks to DuckDB. Writers
(analysis jobs, sentence evaluation, the job tracker) each write one
*partition*; readers (the app, the CLI, the SQL console) call :func:`connect`
and query the views described in :mod:`analytics.schema`.

On-disk layout (``<root>`` is passed in; :func:`default_root` reads
``RNNVIS_STORE``)::

    <root>/models/model_id=<id>/            one partition per model (one analysis job)
        models.<v>.parquet  training_metrics.<v>.parquet  vocab.<v>.parquet
        word_responses.<v>.parquet  coclusters.<v>.parquet  [gradient_flow.<v>.parquet]
    <root>/sentences/sentence_id=<id>/      one partition per evaluated sentence
        sentences.<v>.parquet  sentence_states.<v>.parquet
    <root>/jobs/job_id=<id>/jobs.<v>.parquet  one partition per job
    <root>/checkpoints/<model_id>.pt        written by the training code (see checkpoint_path)
    <root>/.staging/                        partitions being written, old versions being
                                            deleted, and commit.lock

Directory names are Hive-style (``model_id=<id>``) so that a filter on the
partition key (``WHERE model_id = ?``) skips the other partitions' files
without opening them. Every file also carries its key column. ``<v>`` is the
version of the partition (a hex token, the same for all its files, new at
every write): a path is never reused for different content, because DuckDB
may read a file's footer when it plans a query and its data later, and a
file replaced in between would be read with the wrong footer.

Atomicity. A :class:`PartitionWriter` writes into
``.staging/<kind>.<id>.<host>.<pid>.<rand>.tmp``, fsyncs the files and the
directory (unless ``durable=False``: see :func:`write_partition`; used only
for evaluated sentences), then, under ``.staging/commit.lock``, puts the
partition in place:
a new partition is renamed in; an existing one is swapped with the staged one
in a single ``renameat2(RENAME_EXCHANGE)`` call (readers see the old or the
new partition, never none and never part of one), and the old version, now
in staging, is deleted. Where the file system cannot exchange (e.g. NFS), the
old directory is renamed away and the new one renamed in: for that moment the
partition is absent, never partial. The old version is deleted
``RETIRE_GRACE_S`` seconds later (a reader may still be listing it). A killed
writer leaves only its ``.tmp`` directory, which no view ever reads;
:func:`clean_staging` removes such leftovers (never those of a live writer
on this host).

What a reader can see while a partition is replaced: within one table, the
old rows or the new rows, never a part or a mix. A query that lists the
files at the very moment of the swap may also find the partition absent (as
if not written yet; DuckDB lists a directory, then checks each name by path)
or fail with DuckDB's "Cannot open file ... No such file or directory"
(:func:`query` retries those). A query that reads two tables of a partition
being replaced at that moment may get them from different versions.

Readers. :func:`connect` returns an in-memory DuckDB connection with one view
per table over ``read_parquet(<glob>, union_by_name=true,
hive_partitioning=true)``, columns cast to the schema types. The glob is
evaluated at every query, so a connection sees partitions committed after it
was opened. Read-only connections are cursors on one sandboxed in-memory
database per process and store root, whose views are checked (and rebuilt if
needed) at every connect. No DuckDB database file is ever opened.

Files are immutable once committed; writing a partition always rewrites it
whole (:meth:`PartitionWriter.keep` carries a table over from the current
version without rewriting it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import fcntl
import logging
import os
import random
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.schema import KINDS, VIEWS, Kind, View
from models.checkpoint import ID_PATTERN, checkpoint_file

__all__ = [
    "StoreError",
    "UnknownModelError",
    "UnknownPartitionError",
    "SchemaMismatchError",
    "PartitionWriter",
    "default_root",
    "validate_id",
    "write_partition",
    "delete_partition",
    "list_partitions",
    "partition_path",
    "table_file",
    "require_model",
    "connect",
    "query",
    "checkpoint_path",
    "clean_staging",
    "arrow_schema",
    "sandbox_connection",
    "parse_statements",
    "ParsedStatement",
    "statement_ast",
    "fetch_limited",
    "parquet_bytes",
    "QueryError",
    "QueryTimeout",
    "QueryOutOfMemory",
    "QueryRefused",
    "ROW_GROUP_ROWS",
    "STAGING_DIR",
    "RETIRE_GRACE_S",
]

log = logging.getLogger(__name__)

#: Rows per Parquet row group (the writer buffers small chunks up to this).
ROW_GROUP_ROWS = 1 << 20

STAGING_DIR = ".staging"
_LOCK_NAME = "commit.lock"
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"
_ID_RE = ID_PATTERN  # one definition of a valid id, shared with the checkpoints

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}


# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """Anything wrong with reading or writing the store."""


class SchemaMismatchError(StoreError):
    """A frame handed to the writer does not match the view's schema."""


class UnknownPartitionError(StoreError, KeyError):
    """No partition of this kind with this id."""

    def __init__(self, kind: str, key: str, known: Sequence[str] = ()):
        self.kind, self.key, self.known = kind, key, list(known)
        shown = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        super().__init__(f"no {kind} partition {key!r} in the store; known: {shown or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownModelError(UnknownPartitionError):
    """No model with this id in the store."""

    def __init__(self, model_id: str, known: Sequence[str] = ()):
        super().__init__("models", model_id, known)
        self.model_id = model_id
        shown = ", ".join(self.known[:20]) + (" ..." if len(self.known) > 20 else "")
        self.args = (f"unknown model {model_id!r}; known models: {shown or '(none)'}",)


# --------------------------------------------------------------------------- paths


def default_root() -> Path:
    """The store root: ``$RNNVIS_STORE`` if set, else ``./var/store``."""
    env = os.environ.get("RNNVIS_STORE")
    return Path(env).expanduser() if env else Path.cwd() / "var" / "store"


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe id for a path, else raise ValueError.

    Ids are 1-128 characters of ``A-Za-z0-9._-`` starting with a letter or
    digit, so they can never climb out of the store (``..``, ``/``).
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown partition kind {kind!r}; known kinds: {', '.join(KINDS)}") from None


def _root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser().absolute()
    if any(ch in str(path) for ch in "*?[]{}'"):
        raise StoreError(f"store root {str(path)!r} must not contain any of * ? [ ] {{ }} '")
    return path


def partition_path(root: str | os.PathLike[str], kind: str, key: str) -> Path:
    """Directory of partition ``key`` of ``kind`` (whether or not it exists)."""
    k = _kind(kind)
    validate_id(key, k.key)
    return _root(root) / k.name / f"{k.key}={key}"


def checkpoint_path(root: str | os.PathLike[str], model_id: str) -> Path:
    """Where the training code keeps the checkpoint of ``model_id`` (not created here)."""
    validate_id(model_id, "model_id")
    return checkpoint_file(_root(root), model_id)


def list_partitions(root: str | os.PathLike[str], kind: str) -> list[str]:
    """Ids of the committed partitions of ``kind``, sorted."""
    k = _kind(kind)
    prefix = k.key + "="
    try:
        entries = list(os.scandir(_root(root) / k.name))
    except FileNotFoundError:
        return []
    keys = [
        e.name[len(prefix) :]
        for e in entries
        if e.name.startswith(prefix) and _ID_RE.fullmatch(e.name[len(prefix) :]) and e.is_dir()
    ]
    return sorted(keys)


def require_model(root: str | os.PathLike[str], model_id: str) -> None:
    """Raise UnknownModelError (listing the known ids) unless ``model_id`` is stored."""
    validate_id(model_id, "model_id")
    if not partition_path(root, "models", model_id).is_dir():
        raise UnknownModelError(model_id, list_partitions(root, "models"))


# --------------------------------------------------------------------------- file system helpers


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc_renameat2: Any = None
_libc_checked = False


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the platform or file system cannot do it.
    """
    global _libc_renameat2, _libc_checked
    if not _libc_checked:
        _libc_checked = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _libc_renameat2 = fn
        except (OSError, AttributeError):
            _libc_renameat2 = None
    if _libc_renameat2 is None:
        return False
    rc = _libc_renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


class _CommitLock:
    """Exclusive lock on ``<root>/.staging/commit.lock`` while partitions are swapped."""

    def __init__(self, root: Path):
        self.path = root / STAGING_DIR / _LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> _CommitLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.fd is not None
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


#: Seconds a replaced or deleted partition version stays in staging before it
#: is deleted, so that queries already reading its files finish normally
#: (on Linux an open file survives deletion anyway; on NFS it would not).
RETIRE_GRACE_S = 30.0


def _retire(old: Path) -> None:
    """Delete a replaced partition version after ``RETIRE_GRACE_S``, in the background."""
    os.utime(old)  # mtime = when it was retired, for _sweep_retired
    timer = threading.Timer(RETIRE_GRACE_S, _remove_tree, args=(old,))
    timer.daemon = True  # if the process exits first, the next commit's sweep removes it
    timer.start()


def _sweep_retired(root: Path) -> None:
    """Delete retired versions (``.old`` in staging) older than the grace period."""
    now = time.time()
    try:
        entries = list(os.scandir(root / STAGING_DIR))
    except FileNotFoundError:
        return
    for e in entries:
        if e.name.endswith(".old"):
            try:
                if now - e.stat(follow_symlinks=False).st_mtime > RETIRE_GRACE_S:
                    _remove_tree(Path(e.path))
            except FileNotFoundError:
                continue


def _file_name(table: str, version: str) -> str:
    return f"{table}.{version}.parquet"


def _table_file(partition: Path, table: str) -> Path | None:
    """The file of ``table`` in a committed partition directory, if any."""
    try:
        with os.scandir(partition) as files:
            for f in files:
                if f.name.startswith(table + ".") and f.name.endswith(".parquet"):
                    return Path(f.path)
    except FileNotFoundError:
        pass
    return None


def table_file(root: str | os.PathLike[str], kind: str, key: str, table: str) -> Path | None:
    """Path of ``table``'s Parquet file in partition ``key`` of ``kind`` (None if absent).

    For tools that want the raw file; the name changes at every rewrite.
    """
    if table not in _kind(kind).views:
        raise StoreError(f"table {table!r} does not belong in a {kind} partition")
    return _table_file(partition_path(root, kind, key), table)


# --------------------------------------------------------------------------- schema conversion


def arrow_schema(view_name: str) -> pa.Schema:
    """The Arrow schema files of ``view_name`` are written with."""
    v = VIEWS[view_name]
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in v.columns])


def _to_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got {type(data).__name__}")


def _conform(view: View, data: Any) -> pa.Table:
    """Check ``data`` against the view's columns and cast it to the file schema."""
    table = _to_arrow(data)
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


# --------------------------------------------------------------------------- writing


class _TableSink:
    """One Parquet file of a partition being written, fed in chunks."""

    def __init__(self, path: Path, view: View, row_group_rows: int):
        self.path = path
        self.view = view
        self.schema = arrow_schema(view.name)
        self.row_group_rows = row_group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None
        self.presorted = True  # every chunk so far came in the view's sort order

    def _open(self) -> pq.ParquetWriter:
        floats = [c.name for c in self.view.columns if c.type in _FLOAT_TYPES]
        others = [c.name for c in self.view.columns if c.type not in _FLOAT_TYPES]
        return pq.ParquetWriter(
            self.path,
            self.schema,
            compression="zstd",
            use_dictionary=others,
            use_byte_stream_split=floats or False,
            write_statistics=True,
            write_page_index=True,
        )

    def add(self, table: pa.Table, presorted: bool = False) -> None:
        if table.num_rows == 0:
            return
        self.presorted = self.presorted and presorted
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        while self.pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _flush(self, limit: int | None = None) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        if self.view.sort_by and not self.presorted:  # sort before splitting, so in-order chunks give a sorted file
            table = table.sort_by([(c, "ascending") for c in self.view.sort_by])
        if limit is not None and table.num_rows > limit:
            head, rest = table.slice(0, limit), table.slice(limit)
            self.pending, self.pending_rows = [rest], rest.num_rows
        else:
            head = table
            self.pending, self.pending_rows = [], 0
        if self.writer is None:
            self.writer = self._open()
        self.writer.write_table(head, row_group_size=self.row_group_rows)

    def close(self, fsync: bool = True) -> None:
        self._flush()
        if self.writer is None:  # no rows: still write a valid, empty file
            self.writer = self._open()
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()
        self.writer = None
        if fsync:
            _fsync_path(self.path)

    def abort(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - the partition is discarded anyway
                log.debug("closing %s while aborting failed", self.path, exc_info=True)
            self.writer = None


class PartitionWriter:
    """Writes one partition atomically; use it through :func:`write_partition`.

    ::

        with write_partition(root, "models", model_id) as w:
            w.write("models", models_df)
            for layer, state in ...:              # stream a big table in chunks
                w.write("word_responses", chunk)   # appended to the same file
            w.keep("training_metrics")             # carry over from the current version

    On a clean exit the files are closed and fsynced and the partition
    replaces the current one in one atomic step. On an exception nothing
    is committed and the staging directory is removed.

    Each ``write`` checks the chunk's columns against :mod:`analytics.schema`
    (a missing or unknown column raises :class:`SchemaMismatchError`), casts
    them to the schema types, and checks that the key column (``model_id``,
    ``sentence_id`` or ``job_id``) equals the partition id. Rows are sorted
    by the view's ``sort_by`` within each row group (``ROW_GROUP_ROWS`` rows):
    stream ``word_responses`` in (layer, state) order and the whole file is
    sorted. The partition's primary table (``models``, ``sentences``,
    ``jobs``) must be written or kept.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        kind: str,
        key: str,
        *,
        row_group_rows: int = ROW_GROUP_ROWS,
        durable: bool = True,
    ):
        self.kind = _kind(kind)
        self.durable = bool(durable)
        self.key = validate_id(key, self.kind.key)
        self.root = _root(root)
        self.target = partition_path(self.root, kind, key)
        self.row_group_rows = int(row_group_rows)
        if self.row_group_rows < 1:
            raise ValueError("row_group_rows must be positive")
        self.version = f"{time.time_ns():x}{uuid.uuid4().hex[:6]}"
        self.staging: Path | None = None
        self._sinks: dict[str, _TableSink] = {}
        self._kept: set[str] = set()
        self._state = "new"  # new -> open -> committed | aborted

    # -- context manager
    def __enter__(self) -> PartitionWriter:
        if self._state != "new":
            raise StoreError("a PartitionWriter can be entered only once")
        staging_root = self.root / STAGING_DIR
        staging_root.mkdir(parents=True, exist_ok=True)
        self.staging = staging_root / (
            f"{self.kind.name}.{self.key}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        )
        self.staging.mkdir()
        self._state = "open"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()

    # -- writing
    def _check_open(self) -> Path:
        if self._state != "open" or self.staging is None:
            raise StoreError(
                f"partition writer for {self.kind.name}/{self.key} is {self._state}; "
                "use it inside `with write_partition(...) as w:`"
            )
        return self.staging

    def _view(self, table: str) -> View:
        if table not in self.kind.views:
            raise StoreError(
                f"table {table!r} does not belong in a {self.kind.name} partition; "
                f"it holds: {', '.join(self.kind.views)}"
            )
        return VIEWS[table]

    def write(self, table: str, data: pd.DataFrame | pa.Table | pa.RecordBatch, *, presorted: bool = False) -> int:
        """Append ``data`` (a DataFrame or Arrow table) to ``table``; returns rows written so far.

        ``presorted``: the caller promises that this and every earlier chunk of
        ``table`` come in the view's sort order, so the rows need no sort (a
        broken promise only makes the file unsorted: slower to filter, not wrong).
        """
        staging = self._check_open()
        view = self._view(table)
        if table in self._kept:
            raise StoreError(f"{table}: already kept from the previous version; cannot also write it")
        chunk = _conform(view, data)
        key_col = chunk.column(self.kind.key)
        if chunk.num_rows and (
            key_col.null_count or not pc.all(pc.equal(key_col, pa.scalar(self.key))).as_py()
        ):
            bad = pc.unique(pc.filter(key_col, pc.invert(pc.fill_null(pc.equal(key_col, self.key), False))))
            raise StoreError(
                f"{table}: every row's {self.kind.key} must be {self.key!r} (the partition id); "
                f"found {bad.to_pylist()[:5]}"
            )
        sink = self._sinks.get(table)
        if sink is None:
            path = staging / _file_name(table, self.version)
            sink = self._sinks[table] = _TableSink(path, view, self.row_group_rows)
        sink.add(chunk, presorted)
        os.utime(staging)  # liveness, for clean_staging
        return sink.rows

    def keep(self, table: str) -> bool:
        """Carry ``table`` over unchanged from the partition's current version.

        Returns False (and does nothing) if there is no current version of it.
        The file is hard-linked when possible, else copied.
        """
        staging = self._check_open()
        self._view(table)
        if table in self._sinks:
            raise StoreError(f"{table}: already written in this partition; cannot also keep it")
        src = _table_file(self.target, table)
        if src is None:
            return False
        dst = staging / _file_name(table, self.version)
        try:
            os.link(src, dst)
        except FileNotFoundError:
            return False
        except OSError:
            try:
                shutil.copy2(src, dst)
            except FileNotFoundError:
                return False
            _fsync_path(dst)
        self._kept.add(table)
        return True

    @property
    def rows(self) -> dict[str, int]:
        """Rows written so far, per table."""
        return {t: s.rows for t, s in self._sinks.items()}

    # -- finishing
    def commit(self) -> None:
        """Close the files and put the partition in place (done by ``__exit__``)."""
        staging = self._check_open()
        primary = self.kind.primary
        if primary not in self._sinks and primary not in self._kept:
            raise StoreError(
                f"{self.kind.name} partition {self.key!r} has no {primary!r} table; write or keep it"
            )
        for sink in self._sinks.values():
            sink.close(fsync=self.durable)
        if self.durable:
            _fsync_path(staging, directory=True)
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        old: Path | None = None
        _sweep_retired(self.root)
        with _CommitLock(self.root):
            if self.target.exists():
                old = staging.with_suffix(".old")
                if _exchange(staging, self.target):
                    os.rename(staging, old)  # the previous version, now in staging
                else:  # no atomic exchange here: the partition is briefly absent
                    os.rename(self.target, old)
                    try:
                        os.rename(staging, self.target)
                    except OSError:
                        os.rename(old, self.target)
                        raise
            else:
                os.rename(staging, self.target)
            if self.durable:
                _fsync_path(parent, directory=True)
        self._state = "committed"
        if old is not None:
            _retire(old)
        log.info(
            "committed %s partition %s (%s)",
            self.kind.name,
            self.key,
            ", ".join(f"{t}: {n} rows" for t, n in self.rows.items()) or "kept tables only",
        )

    def abort(self) -> None:
        """Discard everything written; the current partition (if any) is untouched."""
        if self._state in ("committed", "aborted"):
            return
        for sink in self._sinks.values():
            sink.abort()
        if self.staging is not None:
            _remove_tree(self.staging)
        self._state = "aborted"


def write_partition(
    root: str | os.PathLike[str], kind: str, key: str, *, row_group_rows: int = ROW_GROUP_ROWS,
    durable: bool = True,
) -> PartitionWriter:
    """A :class:`PartitionWriter` for partition ``key`` of ``kind`` (use it in ``with``).

    ``durable=False`` skips the fsyncs: the commit is exactly as atomic for
    readers (staged, then renamed or exchanged in under the commit lock), but
    after an OS crash or power loss the partition may be missing or its
    files empty/truncated. Only for data that is cheap to recompute (a
    user's evaluated sentence), never for a model's analysis.
    """
    return PartitionWriter(root, kind, key, row_group_rows=row_group_rows, durable=durable)


def delete_partition(
    root: str | os.PathLike[str], kind: str, key: str, *, missing_ok: bool = False
) -> None:
    """Remove a partition atomically (it vanishes from every view at once)."""
    target = partition_path(root, kind, key)
    rootp = _root(root)
    with _CommitLock(rootp):
        if not target.is_dir():
            if missing_ok:
                return
            if kind == "models":
                raise UnknownModelError(key, list_partitions(rootp, kind))
            raise UnknownPartitionError(kind, key, list_partitions(rootp, kind))
        trash = rootp / STAGING_DIR / f"{kind}.{key}.{uuid.uuid4().hex[:12]}.old"
        os.rename(target, trash)
        _fsync_path(target.parent, directory=True)
    _retire(trash)
    _sweep_retired(rootp)
    log.info("deleted %s partition %s", kind, key)


def _writer_alive(name: str) -> bool:
    """Whether staging entry ``name`` belongs to a live writer process on this host."""
    parts = name.rsplit(".", 4)  # <kind>.<key>.<host>.<pid>.<rand>.tmp (the key may hold dots)
    if len(parts) != 5 or parts[-1] != "tmp" or parts[1] != _HOST or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_staging(root: str | os.PathLike[str], older_than_s: float = 3600) -> list[str]:
    """Remove leftovers of killed writers from ``<root>/.staging``; returns their names.

    An entry is removed when neither it nor anything directly in it was
    modified for ``older_than_s`` seconds (every ``write`` touches it), unless
    it belongs to a writer process that is still alive on this host.
    """
    staging = _root(root) / STAGING_DIR
    now = time.time()
    removed: list[str] = []
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name == _LOCK_NAME or _writer_alive(entry.name):
            continue
        try:
            newest = entry.stat(follow_symlinks=False).st_mtime
            if entry.is_dir(follow_symlinks=False):
                for child in os.scandir(entry.path):
                    newest = max(newest, child.stat(follow_symlinks=False).st_mtime)
        except FileNotFoundError:
            continue  # committed or removed meanwhile
        if now - newest < older_than_s:
            continue
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(Path(entry.path))
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed.append(entry.name)
    if removed:
        log.info("removed %d staging leftovers from %s", len(removed), staging)
    return removed


# --------------------------------------------------------------------------- reading


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_sql(root: Path, view: View) -> str:
    """SELECT over the view's Parquet glob, with the schema's columns and types."""
    kind = KINDS[view.kind]
    glob = f"{root}/{kind.name}/{kind.key}=*/{view.name}.*.parquet"
    source = (
        f"read_parquet({_quote(glob)}, union_by_name = true, hive_partitioning = true, "
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


class _Engine:
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
        self.con.execute(f"SET allowed_directories = [{', '.join(_quote(str(d) + os.sep) for d in dirs)}]")
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
                _retrying(lambda: self.con.execute(sql))
                current = dict(self.con.execute(_VIEWS_SQL).fetchall())
                self.installed.update({name: current[name] for name in stale})
            return self.con.cursor()


_ENGINES: dict[tuple[Any, ...], _Engine] = {}
_ENGINES_LOCK = threading.Lock()
_MAX_ENGINES = 8


def _engine(root: Path, variant: tuple[Any, ...] = (), factory: Callable[[], _Engine] | None = None) -> _Engine:
    key = (os.getpid(), root, *variant)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            for k in [k for k in _ENGINES if k[0] != key[0]]:  # inherited through fork: unusable
                del _ENGINES[k]
            while len(_ENGINES) >= _MAX_ENGINES:  # open cursors keep an evicted engine alive
                del _ENGINES[next(iter(_ENGINES))]
            engine = _ENGINES[key] = factory() if factory is not None else _Engine(root)
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
    rootp = _root(root)
    try:
        if read_only:
            return _engine(rootp).cursor()
        con = duckdb.connect(":memory:")
        try:
            sql = ";\n".join(_view_statements(rootp, "CREATE OR REPLACE VIEW").values())
            _retrying(lambda: con.execute(sql))
        except BaseException:
            con.close()
            raise
        return con
    except duckdb.Error as e:
        raise StoreError(f"could not open the store at {rootp}: {e}") from e


_TRANSIENT = ("No such file or directory", "Cannot open file")
_T = TypeVar("_T")


def _retrying(fn: Callable[[], _T], retries: int = 3) -> _T:
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
    return _retrying(lambda: con.execute(sql, params).df(), retries)


# --------------------------------------------------------------------------- the SQL sandbox's engine
#
# The policy (which statements and functions a user may run) is in analytics/sandbox.py; here are
# the DuckDB parts it needs: a locked-down connection, the parser, and a bounded, interruptible fetch.


class QueryError(StoreError):
    """A user's query failed (syntax, unknown column, type error, ...); the message is DuckDB's."""


class QueryTimeout(QueryError):
    """The query ran past its time limit and was interrupted."""


class QueryOutOfMemory(QueryError):
    """The query needed more memory than the connection's ``memory_limit``."""


class QueryRefused(QueryError):
    """DuckDB refused an operation (file access outside the store, a locked setting, ...)."""


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

    This layer alone does not stop DDL or ``COPY ... TO`` a path inside the partition
    directories: run only statements that :mod:`analytics.sandbox` has checked.
    """
    rootp = _root(root)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    allowed = [rootp / k.name for k in KINDS.values()]
    config = {"memory_limit": str(memory_limit), "threads": threads, "temp_directory": "",
              "allow_community_extensions": False, "allow_persistent_secrets": False}

    def factory() -> _Engine:
        return _Engine(rootp, allowed=allowed, config=config)

    try:
        return _engine(rootp, ("sandbox", str(memory_limit), threads), factory).cursor()
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
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
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

        return _retrying(run)
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
    finally:
        timer.cancel()


def parquet_bytes(data: Any) -> bytes:
    """A pandas DataFrame or Arrow table as the bytes of one Parquet file (for downloads)."""
    sink = pa.BufferOutputStream()
    pq.write_table(_to_arrow(data), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
