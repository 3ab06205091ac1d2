"""Redis stopped: reading still works, submitting fails fast and clearly, and works again once Redis is back.

Uses a private redis-server on a free port (the shared one on 6379 stays up for everyone else).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from jobhelpers import TINY, job_settings, wait_for

from analytics import store
from analytics.settings import Settings
from workers import client, records, uploads
from workers.settings import JobSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)", pytrace=False)
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        wait_for(lambda: _ping(redis.Redis(port=self.port, socket_connect_timeout=0.2)), 10, "redis to start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _ping(r) -> bool:
    import redis
    try:
        return bool(r.ping())
    except redis.exceptions.ConnectionError:
        return False


def test_redis_down_reading_works_submit_fails_fast_then_recovers(tmp_path, tiny_store, fixtures):
    port = _free_port()
    server = PrivateRedis(port, tmp_path)
    # a copy of the shared store with analysed models (tests/conftest.py): the job records written here must not
    # reach the other modules' tests, whatever order they run in
    root = tmp_path / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging", ".rnnvis.sqlite*"))
    settings = Settings(store=root, broker_url=f"redis://127.0.0.1:{port}/0")
    js = job_settings("down-test:")
    up = uploads.save_corpus_upload(root, [(p.name, p.read_bytes()) for p in sorted((fixtures / "ptb").glob("*.txt"))],
                                 "ptb", owner="t")
    request = {**TINY, "corpus": f"upload:{up.upload_id}"}
    server.start()
    try:
        first = client.submit_train(settings, request, submitted_by="t", job_settings=js)
        assert records.read_job(root, first.job_id).status == "queued"
        server.stop()

        before = set(records.list_jobs(root)["job_id"])
        outcome: list[BaseException | object] = []

        def submit() -> None:
            try:
                outcome.append(client.submit_train(settings, request, submitted_by="t", job_settings=js))
            except BaseException as e:  # noqa: BLE001 - examined below
                outcome.append(e)
        th = threading.Thread(target=submit, daemon=True)
        th.start()
        th.join(60)  # a deadline, not a timing: it answers instead of waiting for Redis to come back
        assert not th.is_alive(), "submitting hung while Redis was down"
        (err,) = outcome
        assert isinstance(err, client.BrokerUnavailable), err
        assert f"127.0.0.1:{port}" in str(err) and "nothing was queued" in str(err) and "Redis" in str(err)
        assert set(records.list_jobs(root)["job_id"]) == before  # no record of a job that was never sent
        assert set(store.list_partitions(root, "jobs")) == before  # nor its archive

        # The reading side needs no broker: every view of existing models, the job list, the Jobs page.
        con = store.connect(root)
        for view in ("models", "training_metrics", "vocab", "word_responses", "coclusters", "gradient_flow"):
            assert store.query(con, f"SELECT count(*) AS n FROM {view} WHERE model_id = 'tiny-lstm'")["n"].item() > 0
        con.close()
        listed = records.list_jobs(root)
        assert first.job_id in set(listed["job_id"])

        server.start()  # Redis is back: the same process submits again, no restart
        again = client.submit_train(settings, request, submitted_by="t", job_settings=js)
        assert records.read_job(root, again.job_id).status == "queued"
        import redis
        r = redis.Redis(port=port)
        assert r.llen("down-test:train") == 1  # this one (the restarted Redis kept nothing); none from the failure
    finally:
        server.stop()


def test_page_submit_reports_broker_down(tmp_path, fixtures):
    """The Jobs page shows the broker error as a message, and nothing is queued."""
    import json

    import plotly

    from app.hosted.auth import LOCAL
    from app.logic import jobs as logic
    from app.logic import jobs_view
    port = _free_port()  # nothing listens there
    settings, js = Settings(store=tmp_path, broker_url=f"redis://127.0.0.1:{port}/0"), JobSettings()
    up = uploads.save_corpus_upload(tmp_path, [(p.name,
                                                p.read_bytes()) for p in sorted((fixtures / "ptb").glob("*.txt"))],
                                    "ptb")
    values = {**logic.preset_values("demo-lstm"), "layers": 1, "hidden_size": 8, "epochs": 1, "batch_size": 4,
              "bptt": 10}
    out = logic.submit_train(settings, js, LOCAL, "demo-lstm", values, "upload", "brown", {"upload_id": up.upload_id})
    table, *_ = jobs_view.job_list(settings, js, None)
    assert "cannot reach the job queue" in json.dumps(out.banner, cls=plotly.utils.PlotlyJSONEncoder)
    assert not out.queued and store.list_partitions(tmp_path, "jobs") == []
    assert "No jobs yet" in json.dumps(table, cls=plotly.utils.PlotlyJSONEncoder)
