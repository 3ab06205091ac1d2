"""Hostile and careless uploads (issue 12): forged checkpoints and zip bombs are refused before anything is
allocated, the import runs under a memory limit, an imported checkpoint's claims are recomputed or marked,
uploads belong to their uploader, and the small upload bugs (a file named upload.json, unpunctuated text)."""
from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import zipfile

import pytest
import torch
from jobhelpers import FIXTURES, REPO, TINY_ANALYSIS

from models.checkpoint import CheckpointError, checkpoint_file, read_checkpoint, save_checkpoint
from models.config import ModelConfig
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from workers import uploads
from workers.errors import JobValidationError

SMALL = ModelConfig(vocab_size=3, embed_size=4, hidden_size=4, layers=1)
WORDS = {"words": ["<pad>", "<unk>", "<eos>"], "freq": [0, 0, 0]}


def _forged(path, **declared):
    """An RNNVis checkpoint holding the weights of a 1x4 model under a config that declares more."""
    save_checkpoint(path, {"model_config": dict(SMALL.__dict__, **declared), "vocab": WORDS,
                           "state_dict": RecurrentModel(SMALL).state_dict()})
    return path


def _upload_in_child(path, store, as_limit_mb: int) -> dict:
    """save_model_upload (what the web request calls) in a fresh process limited to ``as_limit_mb``."""
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(REPO)!r})
resource.setrlimit(resource.RLIMIT_AS, ({as_limit_mb} << 20, {as_limit_mb} << 20))
from workers.uploads import save_model_upload
from workers.errors import JobValidationError
try:
    save_model_upload({str(store)!r}, ({path.name!r}, open({str(path)!r}, 'rb').read()))
    print(json.dumps({{'answer': 'accepted'}}))
except JobValidationError as e:
    print(json.dumps({{'answer': 'refused', 'errors': e.errors}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_forged_checkpoint_declaring_a_huge_model_is_refused_without_allocating_it(tmp_path):
    """2x8192 declared (805 M parameters, 3.2 GB) with 1x4 weights: before, the web request built the model
    (3 GB; 32 GB with 16 layers); now the declared size is checked on the meta device, under a 1.5 GB limit."""
    answer = _upload_in_child(_forged(tmp_path / "forged.pt", hidden_size=8192, layers=2), tmp_path / "store", 1536)
    assert answer["answer"] == "refused", answer
    assert "805.6 M parameters" in answer["errors"]["weights"]
    assert "RNNVIS_MAX_MODEL_MPARAMS" in answer["errors"]["weights"]
    # a declared size under the cap but different from the weights: named, nothing built
    with pytest.raises(JobValidationError, match=r"rnn.weight_ih_l0 is \[16, 4\] but the config needs \[32, 4\]"):
        uploads.save_model_upload(tmp_path / "store", ("f.pt", _forged(tmp_path / "f.pt", hidden_size=8).read_bytes()))
    assert [p.name for p in (tmp_path / "store" / uploads.UPLOAD_DIR).iterdir()] == []  # nothing kept


def test_a_zip_bomb_is_refused_from_the_zip_directory(tmp_path):
    """A state dict whose tensor record is deflated (64 MB of zeros in 65 KB): torch.load would inflate it;
    the zip's central directory shows compressed records, which torch.save never writes."""
    torch.save({"w": torch.zeros(4)}, tmp_path / "plain.pt")
    src = zipfile.ZipFile(tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "bomb.pt", "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = bytes(64 << 20) if info.filename.endswith("data/0") else src.read(info.filename)
            out.writestr(info.filename, data)
    assert (tmp_path / "bomb.pt").stat().st_size < 1 << 20
    with pytest.raises(JobValidationError, match="compressed records") as e:
        uploads.save_model_upload(tmp_path / "store", ("bomb.pt", (tmp_path / "bomb.pt").read_bytes()))
    assert "torch.save writes none" in e.value.errors["weights"]


def test_a_state_dict_over_the_parameter_cap_is_refused(tmp_path):
    """A 5 KB file can hold a 268 M-element tensor (one stored float, stride 0); importing it would allocate 1 GB
    per copy. Its element count is checked against the cap before anything is copied."""
    big = {"emb.weight": torch.zeros(3, 4), "rnn.weight_ih_l0": torch.zeros(1).expand(4 * 8192, 4),
           "rnn.weight_hh_l0": torch.zeros(1).expand(4 * 8192, 8192), "out.weight": torch.zeros(3, 8192)}
    torch.save(big, tmp_path / "big.pt")
    assert (tmp_path / "big.pt").stat().st_size < 1 << 20
    with pytest.raises(JobValidationError, match="holds 268.6 M parameters; the limit is 100 M"):
        uploads.save_model_upload(tmp_path / "store", ("big.pt", (tmp_path / "big.pt").read_bytes()),
                                  ("v.txt", b"a\nb\nc\n"))
    with pytest.raises(JobValidationError, match="limit is 1 M"):
        uploads.save_model_upload(tmp_path / "store", ("big.pt", (tmp_path / "big.pt").read_bytes()),
                                  ("v.txt", b"a\nb\nc\n"), max_params=1_000_000)


def _import_job(tmp_path, weights: tuple[str, bytes], vocab: tuple[str, bytes] | None, monkeypatch, **env):
    """Upload, plan and run an import job's import stage as a worker would (real store, real child process)."""
    from workers import claims, records
    from workers.planning import plan_import_job
    from workers.stages import run_import_stage
    from workers.tracker import StageContext, worker_name
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    root = tmp_path / "store"
    corpus = uploads.save_corpus_upload(root, [(p.name,
                                                p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))],
                                        "ptb", owner="ann")
    model = uploads.save_model_upload(root, weights, vocab, owner="ann", max_params=10**9)
    rec = plan_import_job(root, {"model_upload": model.upload_id, "corpus": f"upload:{corpus.upload_id}",
                                 "analysis": TINY_ANALYSIS}, submitted_by="ann")
    claims.claim_model_id(root, rec.model_id, rec.job_id)
    records.write_job(root, rec)
    outcome = None
    with contextlib.suppress(Exception):  # the record says what happened
        outcome = run_import_stage(StageContext(root, rec.job_id, worker_name(), device="cpu", heartbeat_s=30))
    return root, records.read_job(root, rec.job_id), outcome


def test_the_import_runs_in_a_child_process_under_a_memory_limit(tmp_path, monkeypatch):
    """The cap raised to 1,000 M: a 268 M-parameter LSTM (1 GB) passes the web checks, and building it in the
    worker's child process under RNNVIS_IMPORT_MEMORY_MB=1200 fails with a message; the worker is unharmed."""
    big = {"emb.weight": torch.zeros(3, 4), "rnn.weight_ih_l0": torch.zeros(1).expand(4 * 8192, 4),
           "rnn.weight_hh_l0": torch.zeros(1).expand(4 * 8192, 8192), "out.weight": torch.zeros(3, 8192)}
    torch.save(big, tmp_path / "big.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    root, rec, _ = _import_job(tmp_path, ("big.pt", (tmp_path / "big.pt").read_bytes()), ("v.txt", b"a\nb\nc\n"),
                               monkeypatch, RNNVIS_MAX_MODEL_MPARAMS="1000", RNNVIS_IMPORT_MEMORY_MB="1200")
    assert rec.status == "failed"
    assert "1200 MB" in rec.error and "RNNVIS_IMPORT_MEMORY_MB" in rec.error, rec.error
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 300 * 1024  # KB: this process never held it
    assert not checkpoint_file(root, rec.model_id).exists()


def test_an_imported_checkpoints_claims_are_recomputed_or_marked_reported(tmp_path, monkeypatch):
    """A checkpoint claiming perplexity 1.0, another corpus and a date in 1999: the stored metrics are the ones
    computed on the job's corpus; the claims are kept only under imported.reported_by_uploader."""
    cfg = ModelConfig(vocab_size=3, embed_size=4, hidden_size=4, layers=1)
    claims = {"metrics": [{"epoch": 9, "split": "test", "loss": 0.0, "perplexity": 1.0, "accuracy": 0.999}],
              "corpus": "the whole web", "created_at": "1999-01-01T00:00:00+00:00", "created_by": "mallory",
              "train_config": {"epochs": 999}, "junk": "x" * 100}
    save_checkpoint(tmp_path / "ck.pt", {"model_config": dict(cfg.__dict__), "vocab": WORDS,
                                         "state_dict": RecurrentModel(cfg).state_dict(), **claims})
    root, rec, _ = _import_job(tmp_path, ("ck.pt", (tmp_path / "ck.pt").read_bytes()), None, monkeypatch)
    assert rec.status == "queued" and rec.stage == "analyze", rec.error
    ck = read_checkpoint(checkpoint_file(root, rec.model_id))
    test = next(m for m in ck["metrics"] if m["split"] == "test")
    assert test["perplexity"] > 1.5 and test["epoch"] == 0           # recomputed: 3 words, untrained
    assert ck["corpus"] != "the whole web" and ck["created_by"] == "ann" and not ck["created_at"].startswith("1999")
    assert "junk" not in ck
    reported = ck["imported"]["reported_by_uploader"]
    assert reported["metrics"] == claims["metrics"] and reported["created_at"].startswith("1999")
    assert ck["imported"]["recomputed"] == ["metrics"]
    assert rec.detail["import_result"]["test_perplexity"] == pytest.approx(test["perplexity"])
    # analysed and published: the models view and the Models page carry the mark
    from app.logic.models import models_table
    from app.reader import Reader
    from workers.stages import run_analyze_stage
    from workers.tracker import DONE, StageContext, worker_name
    assert run_analyze_stage(StageContext(root, rec.job_id, worker_name(), device="cpu", heartbeat_s=30)) == DONE
    row = Reader(root).models().iloc[0]
    assert row["test_perplexity"] == pytest.approx(test["perplexity"]) and row["created_by"] == "ann"
    assert json.loads(row["params"])["imported"]["reported_by_uploader"]["corpus"] == "the whole web"
    page = json.dumps(models_table(Reader(root)).to_plotly_json(), default=str)
    assert "reported by uploader (not checked): corpus, created_at, created_by, metrics, train_config" in page


def test_uploads_belong_to_their_uploader(tmp_path):
    """ann's upload ids are refused in bob's jobs with a message; listings show each member their own."""
    from workers.planning import plan_import_job, plan_train_job
    root = tmp_path / "store"
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    mine = uploads.save_corpus_upload(root, files, "ptb", owner="ann")
    theirs = uploads.save_corpus_upload(root, files, "ptb", owner="bob")
    _forged(tmp_path / "ok.pt")
    model = uploads.save_model_upload(root, ("ok.pt", (tmp_path / "ok.pt").read_bytes()), owner="ann")
    assert plan_train_job(root, {"preset": "demo-lstm", "corpus": f"upload:{mine.upload_id}"}, submitted_by="ann")
    with pytest.raises(JobValidationError, match="belongs to another user") as e:
        plan_train_job(root, {"preset": "demo-lstm", "corpus": f"upload:{mine.upload_id}"}, submitted_by="bob")
    assert "upload the file yourself" in e.value.errors["corpus"]
    with pytest.raises(JobValidationError) as e:
        plan_import_job(root, {"model_upload": model.upload_id, "corpus": f"upload:{theirs.upload_id}"},
                        submitted_by="bob")
    assert "belongs to another user" in e.value.errors["weights"]
    assert [u.upload_id for u in uploads.list_uploads(root, "bob")] == [theirs.upload_id]
    assert {u.upload_id for u in uploads.list_uploads(root, "ann")} == {mine.upload_id, model.upload_id}
    assert len(uploads.list_uploads(root, "root", admin=True)) == 3
    assert uploads.list_uploads(root, "eve") == []
    # an admin may use anyone's upload; open mode (no user) any
    assert plan_train_job(root, {"preset": "demo-lstm", "corpus": f"upload:{mine.upload_id}"}, submitted_by="root",
                          admin=True)
    assert plan_import_job(root, {"model_upload": model.upload_id, "corpus": f"upload:{theirs.upload_id}"},
                           submitted_by="root", admin=True)
    assert plan_train_job(root, {"preset": "demo-lstm", "corpus": f"upload:{mine.upload_id}"})


def test_an_upload_from_before_owners_is_for_admins_only(tmp_path):
    """An upload saved before uploads had owners (no owner in its description) was usable by every member."""
    from workers.planning import plan_train_job
    root = tmp_path / "store"
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    old = uploads.save_corpus_upload(root, files, "ptb")                   # owner ""
    request = {"preset": "demo-lstm", "corpus": f"upload:{old.upload_id}"}
    with pytest.raises(JobValidationError, match="predates upload owners") as e:
        plan_train_job(root, request, submitted_by="ann")
    assert "upload the file yourself" in e.value.errors["corpus"]
    assert uploads.list_uploads(root, "ann") == []
    assert plan_train_job(root, request, submitted_by="root", admin=True)
    assert [u.upload_id for u in uploads.list_uploads(root, "root", admin=True)] == [old.upload_id]


def test_a_corpus_file_named_upload_json_keeps_its_content(tmp_path):
    """The upload's description used to be written as upload.json, over the user's file of that name."""
    lines = [json.dumps({"text": f"{'great tasty' if i % 2 else 'awful bland'} food number {i}",
                         "stars": 5 if i % 2 else 1})
             for i in range(40)]
    info = uploads.save_corpus_upload(tmp_path, [("upload.json", "\n".join(lines).encode())])
    assert info.fmt == "yelp" and info.path == "upload.json"
    corpus, _ = uploads.resolve_corpus(tmp_path, {"source": "upload", "upload_id": info.upload_id})
    assert corpus.task == "sentiment" and len(corpus.splits["train"]) == 32
    assert uploads.read_upload(tmp_path, info.upload_id)[0].upload_id == info.upload_id


def test_a_one_sentence_per_line_text_without_punctuation_is_split_by_line(tmp_path):
    """Was refused as "empty train split": the lines made one paragraph, hence one sentence."""
    text = "\n".join(f"the cat number {i} sat on the mat" for i in range(30)) + "\n"
    info = uploads.save_corpus_upload(tmp_path, [("lines.txt", text.encode())], "text")
    corpus, _ = uploads.resolve_corpus(tmp_path, {"source": "upload", "upload_id": info.upload_id})
    assert [len(corpus.splits[s]) for s in ("train", "valid", "test")] == [24, 3, 3]
    assert corpus.splits["train"][0] == ["the", "cat", "number", "N", "sat", "on", "the", "mat", "<eos>"]
    prose = load_corpus(str(FIXTURES / "novel.txt"), "text")       # punctuated prose: still split by sentence
    assert max(len(s) for s in prose.splits["train"]) < 200


def test_a_full_disk_during_a_checkpoint_write_is_a_message_and_leaves_no_file(tmp_path):
    """A file-size limit stands in for a full disk: torch.save's "enforce fail at inline_container.cc" became a
    CheckpointError saying what to do, and neither a checkpoint nor a temporary file is left."""
    ckpt = {"model_config": dict(SMALL.__dict__), "vocab": WORDS, "state_dict": {"w": torch.zeros(200_000)}}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(CheckpointError, match="disk full\\? free space and retry") as e:
            save_checkpoint(tmp_path / "ck" / "m.pt", ckpt)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "\n" not in str(e.value)
    assert list((tmp_path / "ck").iterdir()) == []


@pytest.mark.parametrize("cell,layers,task", [("lstm", 2, "lm"), ("gru", 1, "sentiment"), ("rnn", 3, "lm")])
def test_declared_shapes_are_the_models_own(cell, layers, task):
    from models.safe_load import declared_shapes
    cfg = ModelConfig(task=task, cell=cell, layers=layers, hidden_size=5, embed_size=3, vocab_size=7, num_classes=2)
    assert declared_shapes(cfg) == {k: tuple(v.shape) for k, v in RecurrentModel(cfg).state_dict().items()}


def test_the_jobs_page_lists_only_your_own_uploads_and_refuses_anothers(tmp_path):
    """The corpus box offers a member their own earlier uploads (a viewer none); choosing another user's id
    (a forged callback) is refused with a message."""
    from analytics.settings import Settings
    from app.hosted.auth import User
    from app.logic import jobs as logic
    settings = Settings(store=tmp_path)
    ann, bob, vic = User("ann", "member"), User("bob", "member"), User("vic", "viewer")
    files = [(p.name, p.read_bytes()) for p in sorted((FIXTURES / "ptb").glob("*.txt"))]
    mine = uploads.save_corpus_upload(tmp_path, files, "ptb", owner="ann")
    assert [o["value"] for o in logic.my_corpus_uploads(settings, ann)] == [mine.upload_id]
    assert logic.my_corpus_uploads(settings, bob) == [] and logic.my_corpus_uploads(settings, vic) == []
    data, status, source = logic.reuse_corpus_upload(settings, ann, mine.upload_id)
    assert data["upload_id"] == mine.upload_id and source == "upload"
    data, status, _ = logic.reuse_corpus_upload(settings, bob, mine.upload_id)
    assert data is None and "belongs to another user" in json.dumps(status.to_plotly_json())
    data, status, source = logic.reuse_corpus_upload(settings, vic, mine.upload_id)
    assert data is None and source == "builtin" and "Only members" in json.dumps(status.to_plotly_json())
    root = User("root", "admin")                                       # an admin: everyone's, with the uploader
    assert [(o["value"], o["label"].endswith("by ann")) for o in logic.my_corpus_uploads(settings, root)] == [
        (mine.upload_id, True)]
    data, status, source = logic.reuse_corpus_upload(settings, root, mine.upload_id)
    assert data["upload_id"] == mine.upload_id and source == "upload"


def test_a_vocabulary_file_of_millions_of_entries_is_refused_before_parsing(tmp_path):
    """A 6 MB file of one-letter lines would be 3 M Python strings (~200 MB) in the web request."""
    sd = {"emb.weight": torch.zeros(3, 4), "rnn.weight_ih_l0": torch.zeros(16, 4),
          "rnn.weight_hh_l0": torch.zeros(16, 4),
          "out.weight": torch.zeros(3, 4)}
    torch.save(sd, tmp_path / "m.pt")
    for name, data in (("v.txt", b"a\n" * 3_000_000), ("v.json", b"[" + b'"a",' * 3_000_000 + b'"a"]')):
        with pytest.raises(JobValidationError, match="more than 2,000,000 entries") as e:
            uploads.save_model_upload(tmp_path / "store", ("m.pt", (tmp_path / "m.pt").read_bytes()), (name, data))
        assert "vocab" in e.value.errors
