"""The metadata database: users, sessions, saved queries, job records, model-id claims, the audit log and team notes.

One relational database behind this package, for the web app (:mod:`app.hosted`), the workers
(:mod:`workers.jobdb`) and the SQL console (:mod:`analytics.saved_queries`, the admins' ``audit`` table):
PostgreSQL when ``RNNVIS_DATABASE_URL`` is set (teams on several machines), else SQLite inside the store.
The store itself stays Parquet + DuckDB.

- :mod:`.engine`: which database, one engine per process, migrations at first open, the write lock;
- :mod:`.tables`: the tables (SQLAlchemy Core);
- :mod:`.legacy`: importing the JSON files and ``.jobs.sqlite`` of older versions, once;
- :mod:`.users`: hosted mode's users (their rows; roles and passwords are :mod:`app.hosted`'s);
- :mod:`.sessions`: hosted mode's server-side sessions (their rows);
- :mod:`.audit`: the audit log;
- :mod:`.notes`: the team's notes on models, clusters and units.
"""
from __future__ import annotations

from analytics.metadb import audit, legacy, notes, sessions, tables, users
from analytics.metadb.engine import (
    SQLITE_NAME,
    URL_ENV,
    Database,
    for_store,
    forget,
    journal_mode,
    open_url,
    run,
    sqlite_path,
)

__all__ = ["Database", "for_store", "open_url", "forget", "run", "sqlite_path", "journal_mode", "URL_ENV",
           "SQLITE_NAME", "audit", "legacy", "notes", "sessions", "tables", "users"]
