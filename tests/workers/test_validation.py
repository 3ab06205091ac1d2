"""Invalid requests are refused with field-level messages, and nothing is queued (checked on real Redis)."""
from __future__ import annotations

import base64

import pytest
from jobhelpers import TINY, job_settings

from analytics import store
from analytics.settings import Settings
from workers import client, errors, uploads


@pytest.fixture()
def setup(tmp_path, redis_url, prefix, fixtures):
    import redis
    settings = Settings(store=tmp_path, broker_url=redis_url)
    js = job_settings(prefix + "validation:")
    up = uploads.save_corpus_upload(tmp_path, [(p.name,
                                                p.read_bytes()) for p in sorted((fixtures / "ptb").glob("*.txt"))],
                                 "ptb", owner="ann")
    r = redis.Redis.from_url(redis_url)
    yield settings, js, f"upload:{up.upload_id}", lambda: r.llen(js.broker_prefix + "train")
    keys = list(r.scan_iter(match=js.broker_prefix + "*"))
    if keys:
        r.delete(*keys)


@pytest.mark.parametrize("field,value,message", [
    ("hidden_size", 0, "between 1 and 8192"),
    ("epochs", 10**6, "between 1 and 1000"),
    ("layers", 2.5, "whole number"),
    ("lr", "fast", "must be a number"),
    ("dropout", 1.0, "between 0 and 0.99"),
    ("cell", "transformer", "rnn, gru, lstm"),
    ("batch_size", -3, "between 1 and 4096"),
])
def test_bad_values_are_refused_per_field(setup, field, value, message):
    settings, js, corpus, queued = setup
    with pytest.raises(errors.JobValidationError) as e:
        client.submit_train(settings, {**TINY, "corpus": corpus, field: value}, job_settings=js)
    assert message in e.value.errors[field]
    assert queued() == 0 and store.list_partitions(settings.store, "jobs") == []


def test_several_errors_at_once_and_other_fields(setup):
    settings, js, corpus, queued = setup
    with pytest.raises(errors.JobValidationError) as e:
        client.submit_train(settings, {**TINY, "hidden_size": 0, "epochs": 10**6, "corpus": "nope",
                                       "model_id": "../x", "preset": "demo-lstm"}, job_settings=js)
    assert set(e.value.errors) == {"hidden_size", "epochs", "corpus", "model_id"}
    with pytest.raises(errors.JobValidationError) as e:
        client.submit_train(settings, {"preset": "no-such-preset"}, job_settings=js)
    assert "unknown preset" in e.value.errors["preset"]
    with pytest.raises(errors.JobValidationError) as e:  # a review corpus for a language-model preset
        client.submit_train(settings, {**TINY, "corpus": "fine_foods"}, job_settings=js)
    assert "sentiment classifier" in e.value.errors["corpus"]
    with pytest.raises(errors.JobValidationError) as e:
        client.submit_train(settings, {**TINY, "corpus": corpus, "analysis": {"k_min": 1}}, job_settings=js)
    assert "k_min" in e.value.errors["analysis"]
    assert queued() == 0 and store.list_partitions(settings.store, "jobs") == []
    rec = client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "taken"}, job_settings=js)
    assert queued() == 1
    with pytest.raises(errors.JobValidationError) as e:  # the same model id while that job is queued
        client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "taken"}, job_settings=js)
    assert "is taken" in e.value.errors["model_id"]
    assert queued() == 1 and store.list_partitions(settings.store, "jobs") == [rec.job_id]


@pytest.mark.parametrize("name,data,fmt,message", [
    ("empty.txt", b"", "text", "is empty"),
    ("blank.txt", b"   \n\n", None, "is empty"),
    ("model.bin", bytes(range(256)) * 10, "text", "binary"),
    ("latin1.txt", "caf\xe9 ".encode("latin-1") * 100, "text", "not UTF-8"),
    ("reviews.csv", b"product,score\nP1,great\nP2,other\n", "csv", "text column"),
    ("reviews.json", b'{"stars": 5}\n', "yelp", "'text' and 'stars'"),
    ("one.txt", b"Too short.", "text", "empty"),
])
def test_bad_uploads_are_refused(setup, name, data, fmt, message):
    settings, js, _, queued = setup
    with pytest.raises(errors.JobValidationError) as e:
        uploads.save_corpus_upload(settings.store, [(name, data)], fmt, max_bytes=js.max_upload_bytes)
    assert message in e.value.errors["corpus"]
    assert len(list((settings.store / "uploads").iterdir())) == 1  # only the fixture's corpus; no leftovers
    assert queued() == 0


def test_upload_over_the_size_limit(setup, fixtures):
    from app.logic.jobs import decode_upload
    settings, js, _, queued = setup
    data = (fixtures / "novel.txt").read_bytes()
    with pytest.raises(errors.JobValidationError) as e:
        uploads.save_corpus_upload(settings.store, [("novel.txt", data)], "text", max_bytes=len(data) - 1)
    assert "limit" in e.value.errors["corpus"] and "MB" in e.value.errors["corpus"]
    # The page refuses it before decoding (dcc.Upload sends base64).
    contents = "data:text/plain;base64," + base64.b64encode(data).decode()
    with pytest.raises(errors.JobValidationError, match="limit"):
        decode_upload(contents, "novel.txt", len(data) // 2, "corpus")
    assert queued() == 0


def test_good_uploads_of_every_format(setup, fixtures):
    settings, _, _, _ = setup
    root = settings.store
    csv = uploads.save_corpus_upload(root, [("reviews.csv", (fixtures / "reviews.csv").read_bytes())])
    assert (csv.fmt, csv.task) == ("csv", "sentiment")
    yelp = uploads.save_corpus_upload(root, [("yelp.json", (fixtures / "yelp.json").read_bytes())])
    assert (yelp.fmt, yelp.task) == ("yelp", "sentiment")
    text = uploads.save_corpus_upload(root, [("novel.txt", (fixtures / "novel.txt").read_bytes())])
    assert (text.fmt, text.task) == ("text", "lm")
    one_ptb = uploads.save_corpus_upload(root, [("ptb.txt", (fixtures / "ptb" / "ptb.train.txt").read_bytes())], "ptb")
    assert one_ptb.task == "lm" and sorted(p.name for p in (root / "uploads" / one_ptb.upload_id).glob("*.txt")) \
        == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    corpus, spec = uploads.resolve_corpus(root, {"source": "upload", "upload_id": yelp.upload_id})
    assert corpus.name == "yelp.json" and corpus.task == "sentiment"


def test_concurrent_submissions_of_one_model_id_queue_exactly_one(setup):
    """Six threads submit model_id=rt-race at once: one is queued, five get "model id ... is taken"."""
    import threading

    from app.cli import main
    from workers import records
    settings, js, corpus, queued = setup
    barrier, results = threading.Barrier(6), []

    def go():
        barrier.wait()
        try:
            results.append(client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "rt-race"},
                                               submitted_by="ann", job_settings=js))
        except errors.JobValidationError as e:
            results.append(e)
    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, records.JobRecord)]
    lost = [r for r in results if isinstance(r, errors.JobValidationError)]
    assert len(won) == 1 and len(lost) == 5, results
    assert all("model id 'rt-race' is taken" in e.errors["model_id"] for e in lost)
    assert queued() == 1 and store.list_partitions(settings.store, "jobs") == [won[0].job_id]
    # Cancelling the queued job frees the id; so does deleting a model that was built.
    assert client.cancel(settings, won[0].job_id, by="ann", job_settings=js) == "cancelled"
    again = client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "rt-race"}, job_settings=js)
    records.write_job(settings.store, records.JobRecord(**{**again.__dict__, "status": "done", "stage": "done"}))
    store_dir = settings.store
    (store_dir / "checkpoints").mkdir(exist_ok=True)
    from models.checkpoint import checkpoint_file
    checkpoint_file(store_dir, "rt-race").write_bytes(b"x")
    with pytest.raises(errors.JobValidationError):
        client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "rt-race"}, job_settings=js)
    assert main(["--store", str(store_dir), "delete", "rt-race"]) == 0
    third = client.submit_train(settings, {**TINY, "corpus": corpus, "model_id": "rt-race"}, job_settings=js)
    assert third.model_id == "rt-race"
