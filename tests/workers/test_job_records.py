"""Job records in the metadata database (here its default, SQLite in the store folder), their Parquet
archive for the `jobs` view, the import of an older store's Parquet records, and model-id claims across processes."""
from __future__ import annotations

import datetime as dt
import multiprocessing
import threading

import pandas as pd
import pytest

from analytics import metadb, store
from workers import claims, errors, records
from workers.records import JobRecord


def _job(root, job_id, **over) -> JobRecord:
    rec = JobRecord(job_id, "train", f"m-{job_id}", submitted_by="ann", params={"preset": "demo-gru"}, **over)
    records.write_job(root, rec)
    return rec


def _view(root, sql, params=()):
    con = store.connect(root)
    try:
        return store.query(con, sql, list(params))
    finally:
        con.close()


def test_round_trip_list_newest_first_and_delete(tmp_path):
    t0 = dt.datetime(2026, 1, 1, 12)
    for i in range(5):
        _job(tmp_path, f"j{i:08d}", submitted_at=t0 + dt.timedelta(minutes=i))
    rec = records.read_job(tmp_path, "j00000003")
    assert rec.params == {"preset": "demo-gru"} and rec.submitted_at == t0 + dt.timedelta(minutes=3)
    rec.status, rec.progress, rec.detail = "running", 0.25, {"latest": {"epoch": 1}}
    rec.started_at = rec.heartbeat_at = records.utcnow()
    records.write_job(tmp_path, rec)
    df = records.list_jobs(tmp_path, limit=3)
    assert list(df["job_id"]) == ["j00000004", "j00000003", "j00000002"]
    assert df["submitted_at"].dtype == "datetime64[us]" and df["finished_at"].isna().all()
    row = df.set_index("job_id").loc["j00000003"]
    assert row["display_status"] == "running" and row["progress"] == 0.25 and row["duration_s"] >= 0
    assert list(records.list_jobs(tmp_path, job_id="j00000001")["job_id"]) == ["j00000001"]
    records.request_cancel(tmp_path, "j00000003", by="ann")
    assert records.list_jobs(tmp_path, job_id="j00000003")["display_status"].item() == "cancelling"
    old = records.utcnow() - dt.timedelta(seconds=120)
    records.write_job(tmp_path, JobRecord(**{**rec.__dict__, "heartbeat_at": old}))
    assert records.list_jobs(tmp_path, job_id="j00000003", stale_after_s=60)["display_status"].item() == "cancelling"
    records.cancel_path(tmp_path, "j00000003").unlink()
    assert records.list_jobs(tmp_path, job_id="j00000003", stale_after_s=60)["display_status"].item() == "lost"
    records.delete_job(tmp_path, "j00000003")
    with pytest.raises(errors.UnknownJobError):
        records.read_job(tmp_path, "j00000003")
    assert "j00000003" not in set(records.list_jobs(tmp_path)["job_id"])
    assert "j00000003" not in store.list_partitions(tmp_path, "jobs")
    with pytest.raises(errors.UnknownJobError, match="invalid job id"):
        records.read_job(tmp_path, "../../etc")


def test_the_jobs_view_shows_each_status_change_not_each_progress_update(tmp_path):
    rec = _job(tmp_path, "j00000001")
    assert _view(tmp_path, "SELECT status, stage FROM jobs").to_dict("records") == [{"status": "queued",
                                                                                      "stage": "queued"}]
    rec.status, rec.stage, rec.attempts, rec.worker, rec.progress = "running", "train", 1, "w@h/1", 0.1
    records.write_job(tmp_path, rec)
    rec.progress = 0.5  # a progress update: the live record only
    records.write_job(tmp_path, rec)
    assert records.read_job(tmp_path, rec.job_id).progress == 0.5
    assert _view(tmp_path, "SELECT status, stage, progress FROM jobs").to_dict("records") == [
        {"status": "running", "stage": "train", "progress": 0.1}]
    rec.status, rec.stage, rec.progress, rec.finished_at = "done", "done", 1.0, records.utcnow()
    rec.detail = {"result": {"tokens": 10}}
    records.write_job(tmp_path, rec)
    row = _view(tmp_path, "SELECT status, progress, detail, finished_at FROM jobs WHERE job_id = ?", [rec.job_id])
    assert row["status"].item() == "done" and row["progress"].item() == 1.0 and '"tokens": 10' in row["detail"].item()
    assert row["finished_at"].item() == pd.Timestamp(rec.finished_at)


def test_the_archive_keeps_the_order_of_concurrent_status_changes(tmp_path):
    """Two threads flip one job's status 60 times each; the view ends with the row the database ends with."""
    _job(tmp_path, "j00000001")
    barrier = threading.Barrier(2)

    def flip(status):
        barrier.wait()
        for _ in range(60):
            rec = records.read_job(tmp_path, "j00000001")
            rec.status, rec.attempts = status, rec.attempts + 1
            records.write_job(tmp_path, rec)
    threads = [threading.Thread(target=flip, args=(s,)) for s in ("running", "queued")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last = records.read_job(tmp_path, "j00000001")
    got = _view(tmp_path, "SELECT status, attempts FROM jobs").to_dict("records")
    assert got == [{"status": last.status, "attempts": last.attempts}]


def _old_style_partition(root, job_id, status, model_id):
    """A job record as the store kept it before the job database: a Parquet partition of kind `jobs`."""
    rec = JobRecord(job_id, "train", model_id, status=status, submitted_by="bob", detail={"curve": [{"epoch": 1}]})
    with store.write_partition(root, "jobs", job_id) as w:
        w.write("jobs", pd.DataFrame([rec.row()]))


def test_an_older_store_has_its_parquet_records_and_claims_imported(tmp_path):
    _old_style_partition(tmp_path, "j000000aa", "done", "old-done")
    _old_style_partition(tmp_path, "j000000bb", "running", "old-running")
    (tmp_path / ".claims").mkdir()
    (tmp_path / ".claims" / "old-running").write_text("j000000bb")
    assert not metadb.sqlite_path(tmp_path).exists()
    assert records.read_job(tmp_path, "j000000aa").detail == {"curve": [{"epoch": 1}]}
    assert set(records.list_jobs(tmp_path)["job_id"]) == {"j000000aa", "j000000bb"}
    assert claims.claim_holder(tmp_path, "old-running") == "j000000bb"
    with pytest.raises(errors.JobValidationError, match="is taken"):
        claims.claim_model_id(tmp_path, "old-running", "j000000cc")


def test_a_store_folder_made_again_gets_a_fresh_database(tmp_path):
    import shutil
    root = tmp_path / "store"
    _job(root, "j00000001")
    shutil.rmtree(root)
    with pytest.raises(errors.UnknownJobError):
        records.read_job(root, "j00000001")
    _job(root, "j00000002")
    assert list(records.list_jobs(root)["job_id"]) == ["j00000002"]


def _claim_in_process(root, job_id, barrier, out):
    barrier.wait()
    try:
        claims.claim_model_id(root, "proc-race", job_id)
        out.put((job_id, "won"))
    except errors.JobValidationError as e:
        out.put((job_id, e.errors["model_id"]))
    except BaseException as e:  # reported, not a silent child and a parent waiting out its timeout
        out.put((job_id, f"error: {e!r}"))


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_claim_is_atomic_across_processes(tmp_path, monkeypatch, journal):
    """Six processes claim one model id at the same moment: exactly one holds it; the others are told who.
    Also with the rollback journal that a store on a network file system gets.  Eight rounds, each on a
    new store: six processes switching a new database to WAL at once got "database is locked" in about
    one round of twenty (fixed in analytics.metadb.engine._set_journal_mode)."""
    monkeypatch.setenv("RNNVIS_JOBS_JOURNAL", journal)
    ctx = multiprocessing.get_context("fork")  # the children start with our modules loaded: no torch import
    for round_ in range(8):
        root = tmp_path / f"store{round_}"
        barrier, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_claim_in_process, args=(str(root), f"j0000000{i}", barrier, out))
                 for i in range(6)]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        winners = [j for j, r in results.items() if r == "won"]
        assert len(winners) == 1 and claims.claim_holder(root, "proc-race") == winners[0], results
        assert all(f"job {winners[0]} builds it" in r for j, r in results.items() if j != winners[0]), results


    with metadb.for_store(tmp_path).read() as con:
        assert con.exec_driver_sql("PRAGMA journal_mode").scalar() == journal


def test_the_journal_is_wal_on_a_local_file_system_and_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNVIS_JOBS_JOURNAL", raising=False)
    assert metadb.journal_mode(tmp_path) == "wal"          # tmp_path is on this machine's own disk
    monkeypatch.setenv("RNNVIS_JOBS_JOURNAL", "delete")
    assert metadb.journal_mode(tmp_path) == "delete"
    monkeypatch.setenv("RNNVIS_JOBS_JOURNAL", "shm")
    with pytest.raises(ValueError, match="use auto, wal or delete"):
        metadb.journal_mode(tmp_path)


def test_a_stale_claim_is_taken_over_and_a_release_needs_the_holder(tmp_path):
    rec = _job(tmp_path, "j00000001")
    claims.claim_model_id(tmp_path, rec.model_id, rec.job_id)
    claims.claim_model_id(tmp_path, rec.model_id, rec.job_id)  # the holder again: a no-op
    with pytest.raises(errors.JobValidationError):
        claims.claim_model_id(tmp_path, rec.model_id, "j00000002")
    claims.release_model_id(tmp_path, rec.model_id, "j00000002")  # not the holder: nothing happens
    assert claims.claim_holder(tmp_path, rec.model_id) == rec.job_id
    rec.status = "failed"
    records.write_job(tmp_path, rec)
    claims.claim_model_id(tmp_path, rec.model_id, "j00000002")  # its job failed: the claim was stale
    assert claims.claim_holder(tmp_path, rec.model_id) == "j00000002"
    claims.release_model_id(tmp_path, rec.model_id)
    assert claims.claim_holder(tmp_path, rec.model_id) is None


def test_an_older_job_database_is_imported_once_even_one_with_fewer_columns(tmp_path):
    """A ``.jobs.sqlite`` of an older version (here one made before the view had ``stage``) moves into the
    metadata database at its first open, records and claims; a second open imports nothing again."""
    import sqlite3
    con = sqlite3.connect(tmp_path / ".jobs.sqlite")
    con.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, kind TEXT, model_id TEXT, status TEXT, "
                "submitted_by TEXT, submitted_at INTEGER, detail TEXT)")
    con.execute("INSERT INTO jobs VALUES ('j000000aa', 'train', 'old', 'running', 'bob', 1700000000000000, "
                "'{\"epoch\": 2}')")
    con.execute("CREATE TABLE claims (model_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, claimed_at REAL NOT NULL)")
    con.execute("INSERT INTO claims VALUES ('old', 'j000000aa', 1700000000.0)")
    con.commit()
    con.close()
    rec = records.read_job(tmp_path, "j000000aa")
    assert (rec.status, rec.submitted_by, rec.detail, rec.stage) == ("running", "bob", {"epoch": 2}, "queued")
    assert rec.submitted_at == dt.datetime(2023, 11, 14, 22, 13, 20)
    assert claims.claim_holder(tmp_path, "old") == "j000000aa"
    records.delete_job(tmp_path, "j000000aa")
    metadb.forget(metadb.for_store(tmp_path))           # as a new process: the import is not run again
    with pytest.raises(errors.UnknownJobError):
        records.read_job(tmp_path, "j000000aa")
