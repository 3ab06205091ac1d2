"""Uploads carry data, never instructions (issue 20, items 4 and 5).

- A checkpoint whose ``metrics`` is a DAG of shared lists 22 levels deep (2**22 paths; it became 29 M characters
  of ``models.params`` and a 6 s, +900 MB Models page for everyone) is kept as a bounded summary.
- A checkpoint whose ``train_config.corpus`` names a mode-600 file outside the store: nothing reads it, its
  words never reach ``corpus_tokens``, its path is not in ``models.params``.
- A model trained on an uploaded corpus: ``models.params -> train -> corpus`` does not show the store's path.

Real store, real import child process, real analysis; the jobs' stages run as a worker runs them.
"""
from __future__ import annotations

import contextlib
import json
import os
import tracemalloc

import pytest
import torch
from jobhelpers import FIXTURES, TINY_ANALYSIS

from analytics import store
from models.checkpoint import checkpoint_file, read_checkpoint, save_checkpoint
from models.config import ModelConfig
from models.corpora import CorpusError
from models.rnn import RecurrentModel
from models.summary import CUT, MAX_PARAMS_CHARS, Limits, capped_json, public_path, summarize
from workers import uploads

WORDS = {"words": ["<pad>", "<unk>", "<eos>"], "freq": [0, 0, 0]}
SECRET_WORD = "zyzzyvasecret"


def _stages(root, rec, *names):
    from workers import claims, records
    from workers.stages import run_analyze_stage, run_import_stage, run_train_stage
    from workers.tracker import StageContext, worker_name
    run = {"import": run_import_stage, "train": run_train_stage, "analyze": run_analyze_stage}
    if rec.kind != "analyze":   # as workers.client.submit: a job that builds a model claims its id
        claims.claim_model_id(root, rec.model_id, rec.job_id)
    records.write_job(root, rec)
    for name in names:
        with contextlib.suppress(Exception):  # the record says what happened
            run[name](StageContext(root, rec.job_id, worker_name(), device="cpu", heartbeat_s=30))
    return records.read_job(root, rec.job_id)


def _corpus_upload(root):
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    return uploads.save_corpus_upload(root, files, "ptb", owner="ann")


def _import(tmp_path, **claims):
    from workers.planning import plan_import_job
    cfg = ModelConfig(vocab_size=3, embed_size=4, hidden_size=4, layers=1)
    save_checkpoint(tmp_path / "ck.pt", {"model_config": dict(cfg.__dict__), "vocab": WORDS,
                                         "state_dict": RecurrentModel(cfg).state_dict(), **claims})
    root = tmp_path / "store"
    corpus = _corpus_upload(root)
    model = uploads.save_model_upload(root, ("ck.pt", (tmp_path / "ck.pt").read_bytes()), owner="ann")
    rec = plan_import_job(root, {"model_upload": model.upload_id, "corpus": f"upload:{corpus.upload_id}",
                                 "analysis": TINY_ANALYSIS}, submitted_by="ann")
    return root, corpus, _stages(root, rec, "import", "analyze")


def _sql(root, sql: str) -> list:
    con = store.connect(root)
    return con.execute(sql).fetchall()


def test_a_dag_of_shared_lists_becomes_a_bounded_summary(tmp_path):
    dag: list = [1.5]
    for _ in range(22):
        dag = [dag, dag]   # 2**22 paths to the leaf through shared lists
    root, _, rec = _import(tmp_path, metrics=dag, train_config={"epochs": 3, "deep": dag})
    assert rec.status == "done", rec.error
    (params,), = _sql(root, "SELECT params FROM models")
    assert len(params) <= MAX_PARAMS_CHARS                       # was 29 M characters
    reported = json.loads(params)["imported"]["reported_by_uploader"]
    assert CUT in json.dumps(reported["metrics"]) and reported["train_config"]["epochs"] == 3
    from app.logic.models import models_table
    from app.reader import Reader
    tracemalloc.start()
    try:
        page = json.dumps(models_table(Reader(root)).to_plotly_json(), default=str)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "reported by uploader" in page and peak < 64 << 20    # was +900 MB per render


def test_a_checkpoint_cannot_name_a_file_for_the_worker_to_read(tmp_path):
    secret = tmp_path / "private" / "ptb"
    secret.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (secret / f"ptb.{split}.txt").write_text(f"the {SECRET_WORD} is here\n" * 50)
        os.chmod(secret / f"ptb.{split}.txt", 0o600)
    root, corpus, rec = _import(tmp_path, train_config={"corpus": str(secret), "epochs": 2, "max_len": 123})
    assert rec.status == "done", rec.error
    ck = read_checkpoint(checkpoint_file(root, rec.model_id))
    assert ck["train_config"]["corpus"] == f"upload:{corpus.upload_id}" and ck["train_config"]["max_len"] == 123
    assert str(secret) not in repr({k: v for k, v in ck.items() if k != "state_dict"})
    assert not _sql(root, f"SELECT * FROM corpus_tokens WHERE word = '{SECRET_WORD}'")
    (params,), = _sql(root, "SELECT params FROM models")
    assert str(tmp_path) not in params and str(secret) not in params
    # an analysis without a corpus falls back on the checkpoint's: the import's, never the uploader's path
    from analytics.pipeline import AnalysisOptions, analyze_model
    with pytest.raises(CorpusError, match=f"upload:{corpus.upload_id}"):
        analyze_model(rec.model_id, root, AnalysisOptions(**TINY_ANALYSIS), show_progress=False)


def test_a_model_trained_on_an_upload_shows_no_store_path(tmp_path):
    from workers.planning import plan_train_job
    root = tmp_path / "store"
    corpus = _corpus_upload(root)
    rec = plan_train_job(root, {"preset": "demo-lstm", "hidden_size": 8, "layers": 1, "epochs": 1, "vocab_size": 500,
                                "batch_size": 4, "bptt": 10, "corpus": f"upload:{corpus.upload_id}",
                                "analysis": TINY_ANALYSIS}, submitted_by="ann")
    rec = _stages(root, rec, "train", "analyze")
    assert rec.status == "done", rec.error
    (params,), = _sql(root, "SELECT params FROM models")
    assert json.loads(params)["train"]["corpus"] == f"upload:{corpus.upload_id}"
    assert str(root.absolute()) not in params and str(tmp_path) not in params
    # re-analysed without naming a corpus: the worker finds the recorded upload by its id
    from workers.planning import plan_analyze_job
    again = _stages(root, plan_analyze_job(root, rec.model_id, TINY_ANALYSIS, submitted_by="ann"), "analyze")
    assert again.status == "done", again.error


def test_summaries_are_bounded_typed_and_name_no_paths():
    deep: dict = {"x": 1}
    for _ in range(10):
        deep = {"x": deep}
    out = summarize({"n": 2**70, "nan": float("nan"), "t": torch.zeros(3), "s": "y" * 500, "p": "/etc/shadow",
                     "w": "C:\\Users\\me\\corpus.txt", "deep": deep, "long": list(range(1000))},
                    Limits(depth=4, items=50, text=100, nodes=2000))
    assert out["n"] == float(2**70) and out["nan"] is None and out["t"] == "(Tensor)"
    assert out["s"] == "y" * 100 + CUT and out["p"] == "shadow" and out["w"] == "corpus.txt"
    assert CUT in json.dumps(out["deep"]) and out["long"] == list(range(50)) + [CUT]
    assert public_path("plain words/with a slash") == "plain words/with a slash"
    huge = {"model": {"k": 1}, "train": {f"key{i}": "v" * 150 for i in range(5000)}}
    assert len(capped_json(huge, 4096)) <= 4096 and json.loads(capped_json(huge, 4096))["model"] == {"k": 1}


def test_an_uploaded_vocabulary_is_words_counts_and_short_tags(tmp_path):
    from workers.errors import JobValidationError
    dag: list = ["x"]
    for _ in range(22):
        dag = [dag, dag]
    pos = {"<pad>": dag, "<unk>": "NOUN", "not-a-word": "X", "<eos>": "y" * 1000}
    root, _, rec = _import(tmp_path, vocab={**WORDS, "pos": pos})
    assert rec.status == "done", rec.error
    assert read_checkpoint(checkpoint_file(root, rec.model_id))["vocab"]["pos"] == {"<unk>": "NOUN"}
    cfg = ModelConfig(vocab_size=4, embed_size=4, hidden_size=4, layers=1)
    save_checkpoint(tmp_path / "bad.pt", {"model_config": dict(cfg.__dict__), "vocab": {"words": WORDS["words"] + [7],
                                                                                        "freq": [0] * 4},
                                          "state_dict": RecurrentModel(cfg).state_dict()})
    with pytest.raises(JobValidationError, match="must all be strings"):
        uploads.save_model_upload(tmp_path / "store", ("bad.pt", (tmp_path / "bad.pt").read_bytes()), owner="ann")
