"""Jobs queued with no worker running (gunicorn starts no embedded worker): the Jobs page says so, and stops
saying so once a real worker announces itself (issue 12)."""
from __future__ import annotations

import json

from jobhelpers import FIXTURES, TINY, job_env, wait_for

from analytics.settings import Settings
from app.logic import jobs_view
from workers import client, records, uploads
from workers.celery_app import live_workers
from workers.settings import JobSettings


def _page_text(settings, js) -> str:
    table, *_ = jobs_view.job_list(settings, js, None)
    parts = table if isinstance(table, list) else [table]
    return json.dumps([p.to_plotly_json() for p in parts], default=str)


def test_queued_jobs_without_a_worker_get_a_warning_until_one_runs(tmp_path, monkeypatch):
    from workers.embedded import start_embedded_worker, stop_embedded_worker
    for k, v in job_env(tmp_path, None, "").items():
        if k.startswith("RNNVIS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("RNNVIS_BROKER_URL", raising=False)
    settings, js = Settings(store=tmp_path, device="cpu"), JobSettings.from_env()
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    up = uploads.save_corpus_upload(tmp_path, files, "ptb", owner="ann")
    rec = client.submit_train(settings, {**TINY, "corpus": f"upload:{up.upload_id}", "model_id": "waits"},
                              submitted_by="ann", job_settings=js)
    assert "No job worker is running" not in _page_text(settings, js)      # just queued: no alarm yet
    text = wait_for(lambda: (lambda t: t if "No job worker is running" in t else None)(_page_text(settings, js)),
                    20, "the no-worker warning")
    assert "1 queued job(s) will wait" in text and "rnnvis worker" in text
    proc = start_embedded_worker(settings, job_settings=js)
    try:
        wait_for(lambda: live_workers(tmp_path, js.stale_after_s), 120, "the worker's presence")
        assert "No job worker is running" not in _page_text(settings, js)
        done = wait_for(lambda: (lambda r: r if r.status in records.TERMINAL else None)(
            records.read_job(tmp_path, rec.job_id)), 240, "the job")
        assert done.status == "done", done.error
    finally:
        stop_embedded_worker(proc)
    wait_for(lambda: not live_workers(tmp_path, js.stale_after_s), 30, "the presence file to go")


def test_the_wsgi_app_without_a_broker_logs_that_jobs_need_a_worker(tmp_path, monkeypatch, caplog):
    from app.server import create_wsgi
    monkeypatch.setenv("RNNVIS_STORE", str(tmp_path))
    monkeypatch.delenv("RNNVIS_BROKER_URL", raising=False)
    monkeypatch.delenv("RNNVIS_AUTH", raising=False)
    with caplog.at_level("WARNING", logger="app.server"):
        create_wsgi()
    assert any("no RNNVIS_BROKER_URL" in r.getMessage() and "rnnvis worker" in r.getMessage() for r in caplog.records)
