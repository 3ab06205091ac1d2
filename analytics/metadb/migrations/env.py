"""Alembic's environment for the metadata database: runs on the connection :mod:`analytics.metadb.engine` passes
(already inside the write transaction that serialises first starts), never from an ini file."""
from __future__ import annotations

from alembic import context

from analytics.metadb.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
