"""Jobs through real Redis and real `celery worker` processes: end to end, ten at once, SIGKILL, cancel."""
from __future__ import annotations

import os
import signal

import pytest
from jobhelpers import TINY, TINY_ANALYSIS, job_settings, wait_for

from analytics import store
from models.checkpoint import checkpoint_file, read_checkpoint
from workers import client, errors, records


def _submit(settings, prefix, upload, **over):
    req = {**TINY, "corpus": upload, "analysis": TINY_ANALYSIS, **over}
    return client.submit_train(settings, req, submitted_by="tester", job_settings=job_settings(prefix))


def _done(root, job_id, timeout=120):
    def finished():
        rec = records.read_job(root, job_id)
        return rec if rec.status in records.TERMINAL else None
    rec = wait_for(finished, timeout, f"job {job_id} to finish")
    assert rec.status == "done", f"job {job_id} ended {rec.status}: {rec.error}"
    return rec


def test_submit_progress_done_end_to_end(workers, redis_settings, redis_store, prefix, ptb_upload):
    rec = _submit(redis_settings, prefix, ptb_upload, epochs=6, patience=0, model_id="e2e-lstm")
    assert rec.status == "queued" and records.read_job(redis_store, rec.job_id).status in ("queued", "running")
    seen = {"running": False, "partial": False, "curve": 0, "stages": set()}

    def watch():
        # The store, then the record, then the store again: the order that records.py promises readers.
        published_before = store.partition_path(redis_store, "models", "e2e-lstm").exists()
        r = records.read_job(redis_store, rec.job_id)
        published_after = store.partition_path(redis_store, "models", "e2e-lstm").exists()
        seen["stages"].add(r.stage)
        assert not published_before or r.stage in ("publish", "done"), f"published at stage {r.stage}"
        assert r.status != "done" or published_after, "done before the model was published"
        if r.status == "running":
            seen["running"] = True
            seen["partial"] |= 0 < r.progress < 1
            seen["curve"] = max(seen["curve"], len(r.detail.get("curve", [])))
        return r.status in records.TERMINAL
    wait_for(watch, 120, "the job to finish", poll=0.02)
    final = _done(redis_store, rec.job_id)
    assert seen["running"] and seen["partial"] and seen["curve"] >= 1, seen
    assert final.progress == 1.0 and final.stage == "done" and final.finished_at >= final.started_at
    assert {"train", "done"} <= seen["stages"], seen["stages"]  # (the analysis may pass between two looks)
    # It went through "publish" (written before the partition appeared), after the analysis began.
    stages = final.detail["stages"]
    assert stages["analyze"]["started_at"] <= stages["publish"]["started_at"] <= final.finished_at.isoformat()
    assert [p["epoch"] for p in final.detail["curve"]] == [1, 2, 3, 4, 5, 6]
    latest = final.detail["latest"]
    assert latest["loss"] > 0 and latest["tokens_per_s"] > 0
    assert final.submitted_by == "tester" and final.worker and final.heartbeat_at is not None
    con = store.connect(redis_store)
    m = store.query(con, "SELECT * FROM models WHERE model_id = 'e2e-lstm'")
    assert len(m) == 1 and m["hidden_size"].item() == 8 and m["created_by"].item() == "tester"
    n = store.query(con, "SELECT count(*) AS n FROM word_responses WHERE model_id = 'e2e-lstm'")["n"].item()
    assert n > 0
    epochs = store.query(con, "SELECT max(epoch) AS e FROM training_metrics WHERE model_id = 'e2e-lstm'")["e"].item()
    assert epochs == 6
    row = store.query(con, "SELECT status, progress, params, detail, stage, attempts FROM jobs WHERE job_id = ?",
                      [rec.job_id])
    con.close()
    assert row["status"].item() == "done" and row["attempts"].item() == 1 and '"curve"' in row["detail"].item()
    listed = records.list_jobs(redis_store, stale_after_s=4)
    assert listed.set_index("job_id").loc[rec.job_id, "display_status"] == "done"
    from app.reader import Reader  # the dashboard's view of the store lists the new model
    assert "e2e-lstm" in Reader(redis_store).model_ids()


def test_ten_jobs_at_once_each_with_its_own_results(workers, redis_settings, redis_store, prefix, ptb_upload):
    recs = [_submit(redis_settings, prefix, ptb_upload, model_id=f"ten-{i}", hidden_size=4 + i, epochs=1)
            for i in range(10)]
    assert len({r.job_id for r in recs}) == 10
    finals = [_done(redis_store, r.job_id, timeout=240) for r in recs]
    con = store.connect(redis_store)
    models = store.query(con, "SELECT model_id, hidden_size FROM models WHERE model_id LIKE 'ten-%' ORDER BY 1")
    units = store.query(con, "SELECT model_id, max(unit) + 1 AS units FROM word_responses "
                             "WHERE model_id LIKE 'ten-%' GROUP BY 1 ORDER BY 1")
    con.close()
    assert dict(zip(models["model_id"], models["hidden_size"])) == {f"ten-{i}": 4 + i for i in range(10)}
    assert dict(zip(units["model_id"], units["units"])) == {f"ten-{i}": 4 + i for i in range(10)}
    assert all(f.model_id == f"ten-{i}" and f.detail["result"]["tokens"] > 0 for i, f in enumerate(finals))


def test_sigkill_of_the_training_process_is_taken_over_and_resumed(workers, redis_settings, redis_store, prefix,
                                                                   ptb_upload):
    """The pool process running the training is SIGKILLed mid-training: the worker requeues the task
    (acks_late + reject_on_worker_lost), a worker takes it over and resumes from the last epoch checkpoint."""
    rec = _submit(redis_settings, prefix, ptb_upload, model_id="killed-child", epochs=40, patience=0)
    running = wait_for(lambda: (lambda r: r if r.status == "running" and len(r.detail.get("curve", [])) >= 2
                                else None)(records.read_job(redis_store, rec.job_id)), 120, "two finished epochs")
    pid = int(running.worker.rpartition("/")[2])
    os.kill(pid, signal.SIGKILL)
    # While it is being taken over: the store is readable and the model is not published.
    con = store.connect(redis_store)
    assert store.query(con, "SELECT count(*) AS n FROM models WHERE model_id = 'killed-child'")["n"].item() == 0
    con.close()
    final = _done(redis_store, rec.job_id, timeout=180)
    assert final.detail["resumed_from_epoch"] >= 1
    assert final.detail["stages"]["train"]["attempt"] == 2
    assert final.detail["takeovers"][0]["from"] == running.worker
    assert [p["epoch"] for p in final.detail["curve"]] == list(range(1, 41))
    assert read_checkpoint(checkpoint_file(redis_store, "killed-child"))["complete"]
    con = store.connect(redis_store)
    assert store.query(con, "SELECT count(*) AS n FROM training_metrics WHERE model_id = 'killed-child' "
                            "AND split = 'valid'")["n"].item() == 40
    con.close()


def test_sigkill_of_a_whole_worker_is_taken_over_by_another(workers, redis_settings, redis_store, prefix, ptb_upload):
    """The whole worker (main process and pool) is SIGKILLed: the job shows 'lost', then the other worker
    gets the task after the visibility timeout and resumes it."""
    rec = _submit(redis_settings, prefix, ptb_upload, model_id="killed-worker", epochs=40, patience=0)
    running = wait_for(lambda: (lambda r: r if r.status == "running" and len(r.detail.get("curve", [])) >= 2
                                else None)(records.read_job(redis_store, rec.job_id)), 120, "two finished epochs")
    victim = workers.by_node(running.worker)
    victim.kill_all()
    try:
        wait_for(lambda: records.list_jobs(redis_store, stale_after_s=4).set_index("job_id")
                 .loc[rec.job_id, "display_status"] == "lost", 30, "the job to show as lost")
        final = _done(redis_store, rec.job_id, timeout=180)
        assert final.worker.partition("@")[0] != victim.name  # the other worker finished it
        assert final.detail["resumed_from_epoch"] >= 1 and final.detail["stages"]["train"]["attempt"] == 2
        assert len(final.detail["curve"]) == 40
    finally:
        workers.ensure_running()


def test_cancel_running_and_queued(workers, redis_settings, redis_store, prefix, ptb_upload):
    rec = _submit(redis_settings, prefix, ptb_upload, model_id="cancel-me", epochs=200, patience=0)
    wait_for(lambda: len(records.read_job(redis_store, rec.job_id).detail.get("curve", [])) >= 1, 120, "one epoch")
    assert client.cancel(redis_settings, rec.job_id, by="tester", job_settings=job_settings(prefix)) == "cancelling"
    final = wait_for(lambda: (lambda r: r if r.status in records.TERMINAL else None)(records.read_job(redis_store,
                                                                                                      rec.job_id)),
                     60, "the job to stop")
    assert final.status == "cancelled" and len(final.detail["curve"]) < 200
    assert not store.partition_path(redis_store, "models", "cancel-me").exists()
    ckpt = read_checkpoint(checkpoint_file(redis_store, "cancel-me"))  # what it left is a resumable checkpoint
    assert not ckpt["complete"] and ckpt["resume"]["epoch"] >= 1
    # A queued job (published where no worker listens) is cancelled at once.
    lonely = job_settings(prefix + "nobody:")
    queued = client.submit_train(redis_settings, {**TINY, "corpus": ptb_upload, "model_id": "never-runs"},
                                 submitted_by="tester", job_settings=lonely)
    assert client.cancel(redis_settings, queued.job_id, by="tester", job_settings=lonely) == "cancelled"
    assert records.read_job(redis_store, queued.job_id).status == "cancelled"
    with pytest.raises(errors.JobError, match="already cancelled"):
        client.cancel(redis_settings, queued.job_id, by="tester", job_settings=lonely)
