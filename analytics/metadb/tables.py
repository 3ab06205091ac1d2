"""The tables of the metadata database (SQLAlchemy Core), as the newest migration leaves them.

The migrations (``migrations/versions``) create and change the tables; this module only describes them for
the queries. ``jobs`` has the columns of the store's ``jobs`` view, in its order (timestamps as integer
microseconds since the epoch, UTC); ``tests/analytics/test_metadb.py`` checks that the two agree, so a
column appended to the view needs a migration that appends it here too.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, Table, Text

from analytics.schema import view

__all__ = ["metadata", "users", "sessions", "saved_queries", "jobs", "claims", "audit", "imported",
           "notes", "JOB_TYPES"]

metadata = MetaData()

#: The SQL type of each type of the ``jobs`` view.
JOB_TYPES = {"VARCHAR": Text, "DOUBLE": Float, "INTEGER": Integer, "TIMESTAMP": BigInteger}

users = Table(
    "users", metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("created_at", Text),
    Column("created_by", Text),
    Column("session", Text, nullable=False),          # the session version: a new one ends every session
)

sessions = Table(
    "sessions", metadata,
    Column("key", Text, primary_key=True),            # SHA-256 of the session id (the table holds no usable id)
    Column("user_name", Text, nullable=False),
    Column("v", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False, index=True),
)

saved_queries = Table(
    "saved_queries", metadata,
    Column("user_name", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("sql", Text, nullable=False),
    Column("created_by", Text),
    Column("created_at", Text),
)

jobs = Table(
    "jobs", metadata,
    *(Column(c.name, JOB_TYPES[c.type], primary_key=c.name == "job_id") for c in view("jobs").columns),
    Index("jobs_by_time", "submitted_at", "job_id"),
)

claims = Table(
    "claims", metadata,
    Column("model_id", Text, primary_key=True),
    Column("job_id", Text, nullable=False),
    Column("claimed_at", Float, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("happened_at", BigInteger, nullable=False, index=True),  # microseconds since the epoch, UTC
    Column("who", Text, nullable=False),
    Column("action", Text, nullable=False, index=True),
    Column("target", Text),
    Column("details", Text),
)

#: Which older files (users.json, .jobs.sqlite, ...) have been imported: one row each, so an import runs once.
imported = Table(
    "imported", metadata,
    Column("source", Text, primary_key=True),
    Column("at", Float, nullable=False),
    Column("rows", Integer, nullable=False),
)

#: Team notes (:mod:`analytics.metadb.notes`): on a model (layer..unit NULL), a cluster (layer, state, k, cluster)
#: or a unit (layer, state, unit).
notes = Table(
    "notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Text, nullable=False, index=True),
    Column("layer", Integer),
    Column("state", Text),
    Column("k", Integer),
    Column("cluster", Integer),
    Column("unit", Integer),
    Column("body", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # microseconds since the epoch, UTC
    Column("edited_at", BigInteger),
)
