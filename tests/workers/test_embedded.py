"""Embedded mode (no broker server): the same Celery tasks through the file-system broker in <store>/.broker,
driven from the Jobs page's callbacks and from the `rnnvis jobs` commands."""
from __future__ import annotations

import base64
import json
import os

import pytest
import torch
from jobhelpers import FIXTURES, job_env, wait_for
from torch import nn

from analytics import jobs, store
from analytics.settings import Settings


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
    rec = wait_for(lambda: (lambda r: r if r.status in jobs.TERMINAL else None)(jobs.read_job(root, job_id)),
                   timeout, f"job {job_id}")
    assert rec.status == "done", rec.error
    return rec


def _url(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def test_page_submit_runs_through_the_embedded_worker(embedded, dash_app, jobs_page):
    dash_app.server.config["RNNVIS_SETTINGS"] = embedded
    files = sorted((FIXTURES / "ptb").glob("*.txt"))
    with dash_app.server.test_request_context():
        upload, status, source = jobs_page.upload_corpus([_url(p.read_bytes()) for p in files], [p.name for p in files],
                                                    "ptb")
        assert upload and source == "upload"
        out = jobs_page.submit_job(1, "demo-gru", "gru", {f: v for (f, _, _), v in zip(jobs_page.FIELDS, [1, 8, 8, 2, 1.0, 4, 10, 0.0])}, "upload", "brown", upload,
                              "ui-gru", "my GRU")
    assert "Queued job" in json.dumps(out["banner"].to_plotly_json(), default=str), out
    job_id = out["refresh"]
    rec = _finished(embedded.store, job_id)
    assert rec.submitted_by == "local" and rec.model_id == "ui-gru"  # open mode's implicit user and rec.worker.startswith("embedded-")
    con = store.connect(embedded.store)
    m = store.query(con, "SELECT name, cell, hidden_size FROM models WHERE model_id = 'ui-gru'")
    con.close()
    assert m.to_dict("records") == [{"name": "my GRU", "cell": "gru", "hidden_size": 8}]
    with dash_app.server.test_request_context():
        table, interval, options, selected = jobs_page.refresh_jobs(1, job_id, None)
    assert interval == jobs_page.IDLE_POLL_MS and selected == job_id


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
    wait_for(lambda: len(jobs.read_job(root, long_id).detail.get("curve", [])) >= 1, 120, "an epoch")
    assert main(["--store", root, "jobs", "cancel", long_id]) == 0
    assert "cancelling" in capsys.readouterr().out
    rec = wait_for(lambda: (lambda r: r if r.status in jobs.TERMINAL else None)(jobs.read_job(root, long_id)), 30,
                   "the cancel")
    assert rec.status == "cancelled" and not store.partition_path(root, "models", "cli-long").exists()


class TinyLM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.encoder = nn.Embedding(vocab, 6)
        self.rnn = nn.LSTM(6, 5, 1)
        self.decoder = nn.Linear(5, vocab)


def test_bring_your_own_model_becomes_a_model(embedded, dash_app, jobs_page, tmp_path):
    """A plain state dict + vocabulary, uploaded on the page, is imported and analysed into every view."""
    from models.corpora import load_corpus
    dash_app.server.config["RNNVIS_SETTINGS"] = embedded
    words = sorted(set(load_corpus(str(FIXTURES / "ptb")).tokens("train"))) + ["zebra"]
    torch.manual_seed(1)
    path = tmp_path / "lm.pt"
    torch.save(TinyLM(len(words)).state_dict(), path)
    files = sorted((FIXTURES / "ptb").glob("*.txt"))
    with dash_app.server.test_request_context():
        upload, _, _ = jobs_page.upload_corpus([_url(p.read_bytes()) for p in files], [p.name for p in files], "ptb")
        bad = jobs_page.submit_import(1, _url(path.read_bytes()), "lm.pt", _url(b"a\nb\n"), "vocab.txt", "upload",
                                 "brown", upload, "byo")
        assert "2 words but the embedding has" in bad[3] and bad[1] is jobs_page.no_update
        msg, job_id, *errors = jobs_page.submit_import(1, _url(path.read_bytes()), "lm.pt",
                                                  _url("\n".join(words).encode()), "vocab.txt", "upload", "brown",
                                                  upload, "byo")
    assert job_id and not any(errors), (msg, errors)
    rec = _finished(embedded.store, job_id)
    assert rec.kind == "import" and rec.detail["import_result"]["cell"] == "lstm"
    con = store.connect(embedded.store)
    for view in ("models", "training_metrics", "vocab", "word_responses", "coclusters"):
        assert store.query(con, f"SELECT count(*) AS n FROM {view} WHERE model_id = 'byo'")["n"].item() > 0, view
    con.close()
