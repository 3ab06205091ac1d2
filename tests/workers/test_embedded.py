"""Embedded mode (no broker server): the same Celery tasks through the file-system broker in <store>/.broker,
driven from the Jobs page's logic and from the `rnnvis jobs` commands."""
from __future__ import annotations

import base64
import json
import os

import pytest
import torch
from jobhelpers import FIXTURES, job_env, wait_for
from torch import nn

from analytics import store
from analytics.settings import Settings
from app.hosted.auth import LOCAL
from app.logic import jobs as logic
from app.logic import jobs_view
from workers import records
from workers.settings import JobSettings


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """An embedded worker on a fresh store, started the way `rnnvis serve` starts it."""
    from workers.embedded import start_embedded_worker, stop_embedded_worker
    root = tmp_path_factory.mktemp("embedded")
    env = job_env(root, None, "")
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("RNNVIS_")})
    os.environ.pop("RNNVIS_BROKER_URL", None)
    settings = Settings(store=root, device="cpu")
    proc = start_embedded_worker(settings)
    assert proc is not None and start_embedded_worker(Settings(store=root, broker_url="redis://x")) is None
    yield settings
    stop_embedded_worker(proc)
    assert proc.poll() is not None
    os.environ.clear()
    os.environ.update(saved)


def _finished(root, job_id, timeout=180):
    rec = wait_for(lambda: (lambda r: r if r.status in records.TERMINAL else None)(records.read_job(root, job_id)),
                   timeout, f"job {job_id}")
    assert rec.status == "done", rec.error
    return rec


def _url(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def test_page_submit_runs_through_the_embedded_worker(embedded):
    """The Jobs page's logic (upload a corpus, submit a form) runs the job on the embedded worker."""
    js = JobSettings.from_env()
    files = sorted((FIXTURES / "ptb").glob("*.txt"))
    upload, status, source = logic.upload_corpus(embedded, js, LOCAL, [_url(p.read_bytes()) for p in files],
                                                 [p.name for p in files], "ptb")
    assert upload and source == "upload", status
    values = {**logic.preset_values("demo-gru"), "layers": 1, "hidden_size": 8, "embed_size": 8, "epochs": 2,
              "batch_size": 4, "bptt": 10}
    out = logic.submit_train(embedded, js, LOCAL, "demo-gru", values, "upload", "brown", upload, "ui-gru", "my GRU")
    assert out.queued and "Queued job" in json.dumps(out.banner.to_plotly_json(), default=str), out
    rec = _finished(embedded.store, out.job_id)
    assert rec.submitted_by == "local" and rec.model_id == "ui-gru"  # open mode's implicit user
    assert rec.worker.startswith("embedded-")
    con = store.connect(embedded.store)
    m = store.query(con, "SELECT name, cell, hidden_size FROM models WHERE model_id = 'ui-gru'")
    con.close()
    assert m.to_dict("records") == [{"name": "my GRU", "cell": "gru", "hidden_size": 8}]
    table, interval, options, selected = jobs_view.job_list(embedded, js, None)
    assert interval == jobs_view.IDLE_POLL_MS and selected == out.job_id
    assert "open in Explore" in json.dumps(table.to_plotly_json(), default=str)


def test_cli_submit_list_show_cancel(embedded, capsys):
    from app.cli import main
    root = str(embedded.store)
    rc = main(["--store", root, "jobs", "submit", "--preset", "demo-rnn", "--corpus", str(FIXTURES / "ptb"),
               "--model-id", "cli-rnn", "--hidden-size", "6", "--layers", "1", "--epochs", "1", "--vocab-size", "300",
               "--batch-size", "4", "--bptt", "10", "--states", "h", "--gradient-k", "3", "--k-max", "3",
               "--min-count", "2", "--wait"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    job_id = out.out.strip().splitlines()[-1]
    assert main(["--store", root, "jobs", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert any(r["job_id"] == job_id and r["status"] == "done" for r in listed)
    assert main(["--store", root, "jobs", "show", job_id]) == 0
    shown = capsys.readouterr().out
    assert "cli-rnn" in shown and "training curve" in shown
    # Refused before queueing, with the field named.
    assert main(["--store", root, "jobs", "submit", "--preset", "demo-rnn", "--hidden-size", "0",
                 "--epochs", "1000000", "--corpus", str(FIXTURES / "ptb")]) == 2
    err = capsys.readouterr().err
    assert "hidden_size: must be between 1 and 8192" in err and "epochs: must be between 1 and 1000" in err
    # Cancel a long job while it trains.
    assert main(["--store", root, "jobs", "submit", "--preset", "demo-rnn", "--corpus", str(FIXTURES / "ptb"),
                 "--model-id", "cli-long", "--hidden-size", "6", "--epochs", "500", "--patience", "0",
                 "--vocab-size", "300", "--batch-size", "4", "--bptt", "10"]) == 0
    long_id = capsys.readouterr().out.strip().splitlines()[-1]
    wait_for(lambda: len(records.read_job(root, long_id).detail.get("curve", [])) >= 1, 120, "an epoch")
    assert main(["--store", root, "jobs", "cancel", long_id]) == 0
    assert "cancelling" in capsys.readouterr().out
    rec = wait_for(lambda: (lambda r: r if r.status in records.TERMINAL else None)(records.read_job(root, long_id)), 30,
                   "the cancel")
    assert rec.status == "cancelled" and not store.partition_path(root, "models", "cli-long").exists()


class TinyLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, 6)
        self.rnn = nn.LSTM(6, 5, 1)
        self.decoder = nn.Linear(5, vocab)


def test_bring_your_own_model_becomes_a_model(embedded, tmp_path):
    """A plain state dict + vocabulary, uploaded on the page, is imported and analysed into every view."""
    from models.corpora import load_corpus
    js = JobSettings.from_env()
    words = sorted(set(load_corpus(str(FIXTURES / "ptb")).tokens("train"))) + ["zebra"]
    torch.manual_seed(1)
    path = tmp_path / "lm.pt"
    torch.save(TinyLM(len(words)).state_dict(), path)
    files = sorted((FIXTURES / "ptb").glob("*.txt"))
    upload, _, _ = logic.upload_corpus(embedded, js, LOCAL, [_url(p.read_bytes()) for p in files],
                                       [p.name for p in files], "ptb")
    bad = logic.submit_import(embedded, js, LOCAL, _url(path.read_bytes()), "lm.pt", _url(b"a\nb\n"), "vocab.txt",
                              "upload", "brown", upload, "byo")
    assert "2 words but the embedding has" in bad.errors["byom_vocab"] and not bad.queued
    out = logic.submit_import(embedded, js, LOCAL, _url(path.read_bytes()), "lm.pt", _url("\n".join(words).encode()),
                              "vocab.txt", "upload", "brown", upload, "byo")
    assert out.queued and not out.errors, out
    job_id = out.job_id
    rec = _finished(embedded.store, job_id)
    assert rec.kind == "import" and rec.detail["import_result"]["cell"] == "lstm"
    con = store.connect(embedded.store)
    for view in ("models", "training_metrics", "vocab", "word_responses", "coclusters"):
        assert store.query(con, f"SELECT count(*) AS n FROM {view} WHERE model_id = 'byo'")["n"].item() > 0, view
    con.close()


def test_a_running_job_whose_worker_died_is_queued_again_at_start(tmp_path):
    """`rnnvis serve` with the embedded broker: a job left ``running`` by a worker process that is gone goes back
    to the queue; one whose worker lives, one that ran elsewhere and finished ones stay as they are."""
    import socket
    import subprocess
    import sys

    from workers.embedded import recover_lost_jobs
    from workers.records import JobRecord

    root = tmp_path / "store"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = f"celery@{socket.gethostname()}"
    jobs = {"j0000000a": ("running", f"{here}/{gone.pid}"), "j0000000b": ("running", f"{here}/{os.getpid()}"),
            "j0000000c": ("running", f"celery@elsewhere/{gone.pid}"), "j0000000d": ("done", f"{here}/{gone.pid}")}
    for job_id, (status, worker) in jobs.items():
        records.write_job(root, JobRecord(job_id, "train", f"m-{job_id}", status=status, worker=worker,
                                          stage="train", params={"preset": "demo-gru"}))
    settings = Settings(store=root)
    assert recover_lost_jobs(settings) == ["j0000000a"]
    again = records.read_job(root, "j0000000a")
    assert again.status == "queued" and again.worker is None and again.detail["resubmitted"]
    assert [records.read_job(root, j).status for j in ("j0000000b", "j0000000c", "j0000000d")] == [
        "running", "running", "done"]
    assert recover_lost_jobs(Settings(store=root, broker_url="redis://127.0.0.1:1")) == []  # a broker's own redelivery
