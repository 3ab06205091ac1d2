"""The ``metadata_db`` fixture: every test that takes it runs twice, on SQLite in the store and on a real
PostgreSQL (127.0.0.1:5432, user postgres, or ``RNNVIS_TEST_POSTGRES``), in a throwaway database made for
this test run under a unique name and dropped at its end.

If the server cannot be reached the PostgreSQL variant FAILS, saying so; it is never skipped.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analytics import metadb

#: The server's maintenance database (the throwaway one is created from here).
SERVER = os.environ.get("RNNVIS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_TABLES = ("audit", "claims", "imported", "jobs", "notes", "saved_queries", "sessions", "users")


@dataclass
class MetadataDb:
    kind: str          # "sqlite" | "postgresql"
    root: Path         # a store folder of this test
    url: str | None    # RNNVIS_DATABASE_URL, None for SQLite

    @property
    def db(self) -> metadb.Database:
        return metadb.for_store(self.root)


def _server_url(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


def _admin():
    import psycopg
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not reachable at {SERVER} ({str(e).strip()}). The PostgreSQL variant of this "
                    "test needs the server the development and CI machines run (start it, e.g. `service postgresql "
                    "start`, or set RNNVIS_TEST_POSTGRES); it is never skipped.", pytrace=False)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new PostgreSQL database under a unique name: its URL; dropped (with its connections) at the end."""
    name = f"rnnvis_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin() as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _server_url(name)
    finally:
        with _admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database():
    """A throwaway PostgreSQL database for this test run: its URL; dropped at the end."""
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_db(request, tmp_path, monkeypatch):
    """One backend of the metadata database, empty, for a store folder of this test."""
    root = tmp_path / "store"
    root.mkdir()
    if request.param == "sqlite":
        monkeypatch.delenv(metadb.URL_ENV, raising=False)
        yield MetadataDb("sqlite", root, None)
        metadb.forget(metadb.for_store(root))
        return
    url = request.getfixturevalue("postgres_database")
    monkeypatch.setenv(metadb.URL_ENV, url)
    db = metadb.open_url(url)
    with db.write() as con:
        con.exec_driver_sql(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY")
    metadb.forget(db)  # a fresh Database object: it remembers no import of an earlier test
    yield MetadataDb("postgresql", root, url)
    metadb.forget(metadb.open_url(url))
