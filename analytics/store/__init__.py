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

The package is split by concern; this ``__init__`` re-exports the public names (``from analytics import store;
store.connect(...)``):

- :mod:`analytics.store.core`: errors, the store-root check;
- :mod:`analytics.store.paths`: ids, partition and checkpoint paths, fsync, the atomic exchange, the
  commit lock, retiring replaced versions;
- :mod:`analytics.store.arrow`: Arrow schemas of the views, conversion of frames, Parquet bytes;
- :mod:`analytics.store.writer`: :class:`PartitionWriter`, deleting partitions, cleaning staging;
- :mod:`analytics.store.views`: the views, the per-process engine, :func:`connect`, :func:`query`;
- :mod:`analytics.store.engine`: the DuckDB parts of the SQL sandbox.
"""

from __future__ import annotations

from analytics.store.arrow import arrow_schema, conform, parquet_bytes
from analytics.store.core import (
    SchemaMismatchError,
    StoreError,
    UnknownModelError,
    UnknownPartitionError,
)
from analytics.store.engine import (
    ParsedStatement,
    QueryError,
    QueryOutOfMemory,
    QueryRefused,
    QueryTimeout,
    fetch_limited,
    parse_statements,
    sandbox_connection,
    statement_ast,
)
from analytics.store.paths import (
    RETIRE_GRACE_S,
    STAGING_DIR,
    checkpoint_path,
    default_root,
    list_partitions,
    partition_path,
    partition_version,
    require_model,
    table_file,
    validate_id,
)
from analytics.store.views import connect, query
from analytics.store.writer import (
    ROW_GROUP_ROWS,
    PartitionWriter,
    clean_staging,
    delete_partition,
    write_partition,
)

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
    "partition_version",
    "table_file",
    "require_model",
    "connect",
    "query",
    "checkpoint_path",
    "clean_staging",
    "arrow_schema",
    "conform",
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
