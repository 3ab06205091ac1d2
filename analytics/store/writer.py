"""Writing partitions atomically: :class:`PartitionWriter` and friends (see :mod:`analytics.store`)."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.processes import process_alive
from analytics.schema import VIEWS, View
from analytics.store import paths
from analytics.store.arrow import FLOAT_TYPES, arrow_schema, conform
from analytics.store.core import StoreError, UnknownModelError, UnknownPartitionError, store_root
from analytics.store.paths import (
    HOST,
    LOCK_NAME,
    STAGING_DIR,
    CommitLock,
    file_name,
    find_table_file,
    kind_of,
    list_partitions,
    partition_path,
    partition_version,
    remove_tree,
    validate_id,
)

log = logging.getLogger("analytics.store")

#: Rows per Parquet row group (the writer buffers small chunks up to this).
ROW_GROUP_ROWS = 1 << 20


# --------------------------------------------------------------------------- writing


class _TableSink:
    """One Parquet file of a partition being written, fed in chunks."""

    def __init__(self, path: Path, view: View, row_group_rows: int):
        self.path = path
        self.view = view
        self.schema = arrow_schema(view.name)
        self.row_group_rows = view.row_group_rows or row_group_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None
        self.presorted = True  # every chunk so far came in the view's sort order

    def _open(self) -> pq.ParquetWriter:
        # float16 columns: no byte-stream split (DuckDB cannot read it for them); delta columns: no dictionary
        floats = [c.name for c in self.view.columns if c.type in FLOAT_TYPES and c.name not in self.view.half]
        others = [c.name for c in self.view.columns if c.type not in FLOAT_TYPES and c.name not in self.view.delta]
        return pq.ParquetWriter(
            self.path,
            self.schema,
            compression="zstd",
            use_dictionary=others,
            use_byte_stream_split=floats or False,
            column_encoding={c: "DELTA_BINARY_PACKED" for c in self.view.delta} or None,
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
            paths._fsync_path(self.path)

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
        replaces: str | None = None,
    ):
        self.kind = kind_of(kind)
        self.replaces = replaces
        self.durable = bool(durable)
        self.key = validate_id(key, self.kind.key)
        self.root = store_root(root)
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
            f"{self.kind.name}.{self.key}.{HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
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
        chunk = conform(view, data)
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
            path = staging / file_name(table, self.version)
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
        src = find_table_file(self.target, table)
        if src is None:
            return False
        dst = staging / file_name(table, self.version)
        try:
            os.link(src, dst)
        except FileNotFoundError:
            return False
        except OSError:
            try:
                shutil.copy2(src, dst)
            except FileNotFoundError:
                return False
            paths._fsync_path(dst)
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
            paths._fsync_path(staging, directory=True)
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        old: Path | None = None
        paths._sweep_retired(self.root)
        with CommitLock(self.root):
            self._check_replaces()
            if self.target.exists():
                old = staging.with_suffix(".old")
                if paths._exchange(staging, self.target):
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
                paths._fsync_path(parent, directory=True)
        self._state = "committed"
        if old is not None:
            paths._retire(old)
        log.info(
            "committed %s partition %s (%s)",
            self.kind.name,
            self.key,
            ", ".join(f"{t}: {n} rows" for t, n in self.rows.items()) or "kept tables only",
        )

    def _check_replaces(self) -> None:
        """Under the commit lock: with ``replaces``, the partition must still be that version (a read-modify-write
        of a partition that someone else replaced meanwhile would undo their write)."""
        if self.replaces is not None and partition_version(self.root, self.kind.name, self.key) != self.replaces:
            raise StoreError(f"{self.kind.name} partition {self.key!r} was replaced while it was being updated; "
                             "nothing was written: try again")

    def abort(self) -> None:
        """Discard everything written; the current partition (if any) is untouched."""
        if self._state in ("committed", "aborted"):
            return
        for sink in self._sinks.values():
            sink.abort()
        if self.staging is not None:
            remove_tree(self.staging)
        self._state = "aborted"


def write_partition(
    root: str | os.PathLike[str], kind: str, key: str, *, row_group_rows: int = ROW_GROUP_ROWS,
    durable: bool = True,
    replaces: str | None = None,
) -> PartitionWriter:
    """A :class:`PartitionWriter` for partition ``key`` of ``kind`` (use it in ``with``).

    ``durable=False`` skips the fsyncs: the commit is exactly as atomic for
    readers (staged, then renamed or exchanged in under the commit lock), but
    after an OS crash or power loss the partition may be missing or its
    files empty/truncated. Only for data that is cheap to recompute (a
    user's evaluated sentence), never for a model's analysis.

    ``replaces``: the version (:func:`partition_version`) this write is based on; the commit fails with
    StoreError, and writes nothing, if the partition is another version by then (an update of a partition
    read earlier, e.g. rows added to one of its tables).
    """
    return PartitionWriter(root, kind, key, row_group_rows=row_group_rows, durable=durable, replaces=replaces)


def delete_partition(
    root: str | os.PathLike[str], kind: str, key: str, *, missing_ok: bool = False
) -> None:
    """Remove a partition atomically (it vanishes from every view at once)."""
    target = partition_path(root, kind, key)
    rootp = store_root(root)
    with CommitLock(rootp):
        if not target.is_dir():
            if missing_ok:
                return
            if kind == "models":
                raise UnknownModelError(key, list_partitions(rootp, kind))
            raise UnknownPartitionError(kind, key, list_partitions(rootp, kind))
        trash = rootp / STAGING_DIR / f"{kind}.{key}.{uuid.uuid4().hex[:12]}.old"
        os.rename(target, trash)
        paths._fsync_path(target.parent, directory=True)
    paths._retire(trash)
    paths._sweep_retired(rootp)
    log.info("deleted %s partition %s", kind, key)


def _writer_alive(name: str) -> bool:
    """Whether staging entry ``name`` belongs to a live writer process on this host."""
    parts = name.rsplit(".", 4)  # <kind>.<key>.<host>.<pid>.<rand>.tmp (the key may hold dots)
    if len(parts) != 5 or parts[-1] != "tmp" or parts[1] != HOST or not parts[2].isdigit():
        return False
    pid = int(parts[2])
    return pid == os.getpid() or process_alive(pid)


def clean_staging(root: str | os.PathLike[str], older_than_s: float = 3600) -> list[str]:
    """Remove leftovers of killed writers from ``<root>/.staging``; returns their names.

    An entry is removed when neither it nor anything directly in it was
    modified for ``older_than_s`` seconds (every ``write`` touches it), unless
    it belongs to a writer process that is still alive on this host.
    """
    staging = store_root(root) / STAGING_DIR
    now = time.time()
    removed: list[str] = []
    try:
        entries = list(os.scandir(staging))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name == LOCK_NAME or _writer_alive(entry.name):
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
            remove_tree(Path(entry.path))
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed.append(entry.name)
    if removed:
        log.info("removed %d staging leftovers from %s", len(removed), staging)
    return removed
