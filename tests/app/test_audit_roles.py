"""Who sees the audit log, and the ``jobs`` view, through Dash's own dispatch on a hosted app, on both
backends of the metadata database: an admin's SQL console reads ``audit`` and the Admin page lists it
filtered; a member's or viewer's console is refused it (and does not even list it); every role reads ``jobs``.
"""
from __future__ import annotations

import re
import types

import limits.storage.memory
import pytest

from analytics.metadb import audit
from analytics.settings import Settings
from app import ids
from app.hosted import auth
from app.server import create_app
from tests.app.dispatching import dispatch
from tests.metadata_db import metadata_db, postgres_database  # noqa: F401 - fixtures
from workers import records
from workers.records import JobRecord

SECRET = "s" * 48
_CLOCK = [1e9]
PASSWORDS = {"vera": ("viewer", "viewer-pass-1"), "mo": ("member", "member-pass-1"), "ada": ("admin", "admin-pass-1")}


@pytest.fixture
def console_clock(monkeypatch):
    """The in-process rate-limit storage's clock (these apps configure no Redis), stopped; each console query
    below moves it past the console's rate window, so this test checks who may read what, not the rate."""
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=lambda: _CLOCK[0]))


@pytest.fixture
def hosted(metadata_db, console_clock):
    root = metadata_db.root
    users = auth.UserStore(root / "users.json")
    for name, (role, pw) in PASSWORDS.items():
        users.add(name, pw, role, created_by="cli")
    records.write_job(root, JobRecord("j00000001", "train", "m-1", submitted_by="mo"))
    audit.record(root, "mo", "job submitted", "j00000001", {"kind": "train"})
    app = create_app(Settings(store=root, auth=True, secret_key=SECRET, users_file=root / "users.json",
                              cookie_secure=False))
    app.server.test_client().get("/healthz")
    return app


def _client(app, name):
    c = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": name, "password": PASSWORDS[name][1], "csrf": token, "next": "/sql"})
    assert r.status_code == 303, r.text[:300]
    return c


def _sql(app, client, sql):
    """(rows as dicts by column name, the message) of the console's answer."""
    _CLOCK[0] += 3.0                    # past the console's rate window (see console_clock)
    out = dispatch(app, client, ids.SQL_TABLE, {ids.SQL_EDITOR: sql, ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")
    names = {c["field"]: c["headerName"] for c in out[(ids.SQL_TABLE, "columnDefs")]}
    rows = [{names[k]: v for k, v in r.items()} for r in out[(ids.SQL_TABLE, "rowData")]]
    return rows, str(out[(ids.SQL_MSG, "children")])


def test_only_an_admin_reads_the_audit_table_in_sql_and_every_role_reads_jobs(hosted):
    app = hosted
    rows, _ = _sql(app, _client(app, "ada"), "SELECT who, action, target FROM audit ORDER BY happened_at")
    assert [(r["who"], r["action"], r["target"]) for r in rows] == [
        ("cli", "user added", "vera"), ("cli", "user added", "mo"), ("cli", "user added", "ada"),
        ("mo", "job submitted", "j00000001")]
    for name in ("mo", "vera"):
        client = _client(app, name)
        for sql in ("SELECT * FROM audit", "SELECT count(*) FROM main.audit",
                    "WITH x AS (SELECT 1) SELECT * FROM audit, x"):
            rows, msg = _sql(app, client, sql)
            assert rows == [] and "for admins only" in msg, (name, sql, msg)
        rows, _ = _sql(app, client, "SELECT table_name FROM information_schema.tables WHERE table_name = 'audit'")
        assert rows == []
    for name in PASSWORDS:
        rows, _ = _sql(app, _client(app, name), "SELECT job_id, submitted_by FROM jobs")
        assert rows == [{"job_id": "j00000001", "submitted_by": "mo"}], name


def _admin_page(app, client, **filters):
    values = {ids.ADMIN_AUDIT_ACTION: filters.get("action"), ids.ADMIN_AUDIT_WHO: filters.get("who"),
              ids.ADMIN_AUDIT_TEXT: filters.get("text"), ids.ADMIN_AUDIT_REFRESH: 1}
    return str(dispatch(app, client, ids.ADMIN_AUDIT, values, f"{ids.ADMIN_AUDIT_REFRESH}.n_clicks")
               [(ids.ADMIN_AUDIT, "children")])


def test_the_admin_page_lists_the_audit_log_filtered_and_only_for_admins(hosted):
    app = hosted
    ada = _client(app, "ada")
    page = _admin_page(app, ada)
    assert page.count("user added") == 3 and "job submitted" in page
    page = _admin_page(app, ada, action="job submitted")
    assert "j00000001" in page and "user added" not in page
    assert "vera" in _admin_page(app, ada, text="VER") and "j00000001" not in _admin_page(app, ada, text="ver")
    assert "No events match" in _admin_page(app, ada, who="nobody")
    for name in ("mo", "vera"):
        assert _admin_page(app, _client(app, name)) == ""
