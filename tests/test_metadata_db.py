"""The metadata database on both backends (SQLite in the store, and a real PostgreSQL): users, sessions, saved
queries, job records, model-id claims, the audit log, the import of older files, the migrations.

Every test runs twice through the ``metadata_db`` fixture (:mod:`tests.metadata_db`); the PostgreSQL variant
fails, never skips, when the server is down.
"""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from analytics import metadb, saved_queries
from analytics.metadb import audit
from analytics.schema import view
from app.hosted import auth
from app.hosted.sessions import SessionStore
from tests.metadata_db import metadata_db, postgres_database  # noqa: F401 - fixtures
from workers import claims, errors, records
from workers.records import JobRecord


def test_the_backend_is_the_one_asked_for_and_at_the_newest_migration(metadata_db):
    db = metadata_db.db
    assert db.dialect == metadata_db.kind
    if metadata_db.kind == "sqlite":
        assert metadb.sqlite_path(metadata_db.root).exists()
    else:
        assert not metadb.sqlite_path(metadata_db.root).exists()  # nothing of it in the store
    with db.read() as con:
        assert con.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
    db.migrate()  # at head already: nothing to do, no error


def test_the_jobs_table_has_the_columns_of_the_jobs_view_in_its_order(metadata_db):
    """A column appended to the view needs a migration; this fails until it has one."""
    cols = sa.inspect(metadata_db.db.engine).get_columns("jobs")
    assert [c["name"] for c in cols] == [c.name for c in view("jobs").columns]


def test_users_roles_and_the_last_admin(metadata_db):
    users = auth.UserStore(metadata_db.root / "users.json")
    users.add("ada", "admin-pass-1", "admin", created_by="cli")
    users.add("mo", "member-pass-1", "member", created_by="ada")
    with pytest.raises(auth.AuthError, match="already exists"):
        users.add("mo", "member-pass-2", "viewer", created_by="ada")
    user, version = users.verify("mo", "member-pass-1")
    assert user == auth.User("mo", "member") and users.user("mo", version) == user
    assert users.verify("mo", "wrong-password") is None and users.verify("nobody", "x" * 10) is None
    with pytest.raises(auth.AuthError, match="last admin"):
        users.set_role("ada", "viewer", by="ada")
    users.set_role("mo", "admin", by="ada")
    assert users.user("mo", version) is None           # a new role ends the old sessions
    users.remove("ada", by="mo")
    assert [u["name"] for u in users.list()] == ["mo"] and len(users) == 1
    events = audit.query(metadata_db.db)
    assert list(zip(events["who"], events["action"], events["target"]))[::-1] == [
        ("cli", "user added", "ada"), ("ada", "user added", "mo"), ("ada", "user role changed", "mo"),
        ("mo", "user removed", "ada")]
    assert json.loads(events["details"][1]) == {"from": "member", "to": "admin"}


def test_sessions_end_at_sign_out_expiry_and_user_removal(metadata_db):
    users = auth.UserStore(metadata_db.root / "users.json")
    users.add("vera", "viewer-pass-1", "viewer")
    users.add("ada", "admin-pass-1", "admin")
    sessions = SessionStore(metadata_db.root / "users.sessions.json", 3600)
    a, b = sessions.create("vera", "v1"), sessions.create("vera", "v1")
    rec = sessions.get(a)
    assert (rec["user"], rec["v"]) == ("vera", "v1") and rec["expires"] - rec["created"] == 3600
    sessions.end(a)
    assert sessions.get(a) is None and sessions.get(b) is not None
    assert sessions.get("") is None and sessions.get(None) is None and sessions.get("made-up") is None
    short = SessionStore(metadata_db.root / "users.sessions.json", 0.05)
    c = short.create("ada", "v2")
    time.sleep(0.1)
    assert short.get(c) is None
    users.remove("vera", by="ada")
    assert sessions.get(b) is None
    with metadata_db.db.read() as con:                  # ids are never stored, only their SHA-256
        keys = [r[0] for r in con.execute(sa.select(metadb.tables.sessions.c.key))]
    assert a not in keys and b not in keys


def test_saved_queries_per_user_and_concurrent_saves(metadata_db):
    root = metadata_db.root
    saved_queries.save_query(root, "ann", "b", "SELECT 2")
    saved_queries.save_query(root, "ann", "A", "SELECT 1")
    saved_queries.save_query(root, "ann", "b", "SELECT 3")   # replaces
    assert [(q["name"], q["sql"]) for q in saved_queries.list_queries(root, "ann")] == [("A", "SELECT 1"),
                                                                                         ("b", "SELECT 3")]
    assert saved_queries.list_queries(root, "bob") == []
    with pytest.raises(saved_queries.SavedQueryError, match="invalid user"):
        saved_queries.list_queries(root, "../etc")
    errs = []

    def save(i):
        try:
            saved_queries.save_query(root, "cy", f"q{i}", f"SELECT {i}")
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)
    threads = [threading.Thread(target=save, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errs and len(saved_queries.list_queries(root, "cy")) == 12
    assert saved_queries.delete_query(root, "ann", "A")[0]["name"] == "b"


def test_job_records_and_claims(metadata_db):
    root = metadata_db.root
    rec = JobRecord("j00000001", "train", "m1", submitted_by="ann", params={"preset": "demo-gru"})
    records.write_job(root, rec)
    rec.status, rec.progress, rec.detail = "running", 0.5, {"latest": {"loss": 1.5}}
    records.write_job(root, rec)
    back = records.read_job(root, "j00000001")
    assert (back.status, back.progress, back.detail, back.submitted_at) == ("running", 0.5, rec.detail,
                                                                            rec.submitted_at)
    df = records.list_jobs(root)
    assert list(df["job_id"]) == ["j00000001"] and df["display_status"][0] == "running"
    claims.claim_model_id(root, "m1", "j00000001")
    with pytest.raises(errors.JobValidationError, match="is taken"):
        claims.claim_model_id(root, "m1", "j00000002")
    rec.status = "failed"
    records.write_job(root, rec)
    claims.claim_model_id(root, "m1", "j00000002")           # its job failed: the claim was stale
    assert claims.claim_holder(root, "m1") == "j00000002"
    records.delete_job(root, "j00000001")
    with pytest.raises(errors.UnknownJobError):
        records.read_job(root, "j00000001")


def _claim(root, url, job_id, barrier, out):
    import os
    if url:
        os.environ[metadb.URL_ENV] = url
    barrier.wait()
    try:
        claims.claim_model_id(root, "race", job_id)
        out.put((job_id, "won"))
    except errors.JobValidationError as e:
        out.put((job_id, e.errors["model_id"]))
    except BaseException as e:  # noqa: BLE001 - reported, not a silent child
        out.put((job_id, f"error: {e!r}"))


def test_a_claim_is_atomic_across_processes(metadata_db):
    """Six processes (as if on six hosts) claim one model id at once: exactly one holds it."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(metadata_db.root), metadata_db.url, f"j0000000{i}", barrier, out))
             for i in range(6)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    winners = [j for j, r in results.items() if r == "won"]
    assert len(winners) == 1 and claims.claim_holder(metadata_db.root, "race") == winners[0], results
    assert all(f"job {winners[0]} builds it" in r for j, r in results.items() if j != winners[0]), results


def test_the_audit_log_filters_and_counts_a_throttled_burst_once(metadata_db):
    db = metadata_db.db
    audit.record(db, "ann", "job submitted", "j1", {"kind": "train"})
    audit.record(db, "bob", "job cancelled", "j1", "by hand")
    audit.record(db, "ann", "model deleted", "m_100%")
    for _ in range(5):
        audit.record_burst(db, "eve", "sign-in throttled", "10.0.0.9", "pair", within_s=60)
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(db, "ann", "coffee made")
    assert list(audit.query(db, who="ann")["action"]) == ["model deleted", "job submitted"]
    assert list(audit.query(db, action="job cancelled")["who"]) == ["bob"]
    assert list(audit.query(db, text="J1")["action"]) == ["job cancelled", "job submitted"]
    assert list(audit.query(db, text="100%")["target"]) == ["m_100%"]      # % and _ are literal
    assert list(audit.query(db, text="_1")["target"]) == ["m_100%"]          # not j1 ("_" as a wildcard)
    assert len(audit.query(db, action="sign-in throttled")) == 1
    assert audit.query(db, limit=2)["happened_at"].is_monotonic_decreasing


def _old_files(root):
    """What a store of the previous version held: users.json, its sessions, saved queries, .jobs.sqlite."""
    from argon2 import PasswordHasher
    digest = PasswordHasher().hash("admin-pass-1")
    (root / "users.json").write_text(json.dumps({"version": 1, "users": {
        "ada": {"role": "admin", "hash": digest, "created_at": "2026-01-01T00:00:00+00:00", "created_by": "cli",
                "session": "abc"},
        "vic": {"role": "viewer", "hash": digest, "session": "def"}}}))
    now = time.time()
    (root / "users.sessions.json").write_text(json.dumps({
        "k" * 64: {"user": "ada", "v": "abc", "created": now, "expires": now + 3600},
        "x" * 64: {"user": "vic", "v": "def", "created": now - 7200, "expires": now - 3600}}))
    (root / "saved_queries").mkdir()
    (root / "saved_queries" / "ada.json").write_text(json.dumps({"user": "ada", "queries": [
        {"name": "runs", "sql": "SELECT * FROM jobs", "created_by": "ada", "created_at": "2026-01-02T00:00:00"}]}))
    con = sqlite3.connect(root / ".jobs.sqlite")
    cols = ", ".join(f"{c.name} {'INTEGER' if c.type in ('TIMESTAMP', 'INTEGER') else 'TEXT'}"
                     for c in view("jobs").columns)
    con.execute(f"CREATE TABLE jobs ({cols})")
    con.execute("INSERT INTO jobs (job_id, kind, model_id, status, submitted_by, submitted_at, attempts, stage) "
                "VALUES ('j000000aa', 'train', 'old', 'done', 'ada', 1700000000000000, 1, 'done')")
    con.execute("CREATE TABLE claims (model_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, claimed_at REAL NOT NULL)")
    con.execute("INSERT INTO claims VALUES ('old', 'j000000aa', 1700000000.0)")
    con.commit()
    con.close()


def _start(metadata_db):
    """What a new process (a web worker, a celery worker) does first, on a fresh Database object."""
    metadb.forget(metadata_db.db)
    root = metadata_db.root
    users = auth.UserStore(root / "users.json")
    sessions = SessionStore(root / "users.sessions.json", 3600)
    return users, sessions, saved_queries.list_queries(root, "ada"), records.list_jobs(root)


def test_the_files_of_the_previous_version_are_imported_once(metadata_db):
    root = metadata_db.root
    _old_files(root)
    users, sessions, queries, jobs = _start(metadata_db)
    assert users.verify("ada", "admin-pass-1")[0] == auth.User("ada", "admin")
    assert users.user("vic", "def") == auth.User("vic", "viewer")
    with metadata_db.db.read() as con:
        live = con.execute(sa.select(metadb.tables.sessions.c.user_name)).scalars().all()
    assert live == ["ada"]                                      # the expired one is not carried over
    assert [(q["name"], q["sql"]) for q in queries] == [("runs", "SELECT * FROM jobs")]
    assert list(jobs["job_id"]) == ["j000000aa"] and claims.claim_holder(root, "old") == "j000000aa"
    # what changes afterwards stays changed: a second start imports nothing again
    users.remove("vic", by="ada")
    saved_queries.delete_query(root, "ada", "runs")
    records.delete_job(root, "j000000aa")
    users, _, queries, jobs = _start(metadata_db)
    assert [u["name"] for u in users.list()] == ["ada"] and queries == [] and jobs.empty
    with metadata_db.db.read() as con:
        done = dict(con.execute(sa.select(metadb.tables.imported.c.source, metadb.tables.imported.c.rows)).all())
    assert done["users:users.json"] == 2 and done["saved_queries"] == 1 and done[".jobs.sqlite"] == 1


def test_a_failed_job_an_imported_model_and_a_deleted_model_are_audited(metadata_db, monkeypatch, capsys):
    """The writers that record them: the worker's tracker (failed, imported) and `rnnvis delete`."""
    from app.cli import main
    from models.checkpoint import checkpoint_file
    from workers.tracker import JobTracker
    root = metadata_db.root
    records.write_job(root, JobRecord("j000000f1", "train", "m-bad", status="running", submitted_by="ann",
                                      worker="w1@host/7"))
    JobTracker(root, "j000000f1").finish("failed", error="the corpus is empty")
    records.write_job(root, JobRecord("j000000f2", "import", "m-mine", status="running", submitted_by="bob"))
    JobTracker(root, "j000000f2").finish("done")
    ckpt = checkpoint_file(root, "m-mine")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"not really a checkpoint")
    monkeypatch.setenv("RNNVIS_USER", "cyd")
    assert main(["--store", str(root), "delete", "m-mine"]) == 0 and "deleted m-mine" in capsys.readouterr().out
    events = audit.query(metadata_db.db)[::-1]
    assert list(zip(events["who"], events["action"], events["target"])) == [
        ("w1@host/7", "job failed", "j000000f1"), ("bob", "model imported", "m-mine"),
        ("cyd", "model deleted", "m-mine")]
    assert json.loads(events["details"].iloc[0])["error"] == "the corpus is empty"
