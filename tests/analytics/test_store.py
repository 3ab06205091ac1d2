"""Tests of analytics.store: real DuckDB, real Parquet files, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import schema, store, store_paths

REPO = Path(store.__file__).resolve().parents[1]

# The public contract, copied from the design brief (columns may only be appended).
CONTRACT: dict[str, list[tuple[str, str]]] = {
    "models": [
        ("model_id", "VARCHAR"), ("name", "VARCHAR"), ("task", "VARCHAR"), ("cell", "VARCHAR"),
        ("layers", "INTEGER"), ("hidden_size", "INTEGER"), ("embed_size", "INTEGER"),
        ("vocab_size", "INTEGER"), ("corpus", "VARCHAR"), ("params", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("created_by", "VARCHAR"), ("valid_loss", "DOUBLE"),
        ("valid_perplexity", "DOUBLE"), ("valid_accuracy", "DOUBLE"), ("test_loss", "DOUBLE"),
        ("test_perplexity", "DOUBLE"), ("test_accuracy", "DOUBLE"), ("analyzed_tokens", "BIGINT"),
        ("analysis_split", "VARCHAR"), ("states", "VARCHAR"),
    ],
    "training_metrics": [
        ("model_id", "VARCHAR"), ("epoch", "INTEGER"), ("split", "VARCHAR"), ("loss", "DOUBLE"),
        ("perplexity", "DOUBLE"), ("accuracy", "DOUBLE"), ("tokens_per_s", "DOUBLE"), ("wall_s", "DOUBLE"),
    ],
    "vocab": [
        ("model_id", "VARCHAR"), ("word_id", "INTEGER"), ("word", "VARCHAR"), ("freq", "BIGINT"),
        ("pos", "VARCHAR"),
    ],
    "word_responses": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("word_id", "INTEGER"),
        ("word", "VARCHAR"), ("unit", "INTEGER"), ("n", "INTEGER"), ("mean", "FLOAT"), ("std", "FLOAT"),
        ("q10", "FLOAT"), ("q25", "FLOAT"), ("q50", "FLOAT"), ("q75", "FLOAT"), ("q90", "FLOAT"),
    ],
    "coclusters": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("k", "INTEGER"),
        ("axis", "VARCHAR"), ("item", "INTEGER"), ("cluster", "INTEGER"),
    ],
    "projections": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("axis", "VARCHAR"),
        ("method", "VARCHAR"), ("item", "INTEGER"), ("x", "FLOAT"), ("y", "FLOAT"), ("seed", "INTEGER"),
        ("params", "VARCHAR"),
    ],
    "gradient_flow": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("distance", "INTEGER"), ("grad_norm", "DOUBLE"),
        ("grad_norm_std", "DOUBLE"),
    ],
    "sentences": [
        ("sentence_id", "VARCHAR"), ("model_id", "VARCHAR"), ("text", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("created_by", "VARCHAR"), ("prediction", "VARCHAR"),
        ("probability", "DOUBLE"),
    ],
    "sentence_states": [
        ("sentence_id", "VARCHAR"), ("model_id", "VARCHAR"), ("position", "INTEGER"), ("token", "VARCHAR"),
        ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("value", "FLOAT"),
    ],
    "corpus_tokens": [
        ("model_id", "VARCHAR"), ("position", "INTEGER"), ("document", "INTEGER"), ("word_id", "INTEGER"),
        ("word", "VARCHAR"),
    ],
    "token_states": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"),
        ("position", "INTEGER"), ("value", "FLOAT"),
    ],
    "jobs": [
        ("job_id", "VARCHAR"), ("kind", "VARCHAR"), ("model_id", "VARCHAR"), ("status", "VARCHAR"),
        ("progress", "DOUBLE"), ("submitted_by", "VARCHAR"), ("submitted_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"), ("error", "VARCHAR"), ("params", "VARCHAR"), ("detail", "VARCHAR"),
        ("started_at", "TIMESTAMP"), ("heartbeat_at", "TIMESTAMP"), ("worker", "VARCHAR"),
        ("attempts", "INTEGER"), ("stage", "VARCHAR"),
    ],
}

FLOATS = ["mean", "std", "q10", "q25", "q50", "q75", "q90"]


# --------------------------------------------------------------------------- frame builders


def models_df(model_id: str, name: str = "tiny lstm") -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                model_id=model_id, name=name, task="lm", cell="lstm", layers=2, hidden_size=4,
                embed_size=3, vocab_size=5, corpus="tiny", params=json.dumps({"lr": 0.1}),
                created_at=pd.Timestamp("2024-05-01 12:00:00", tz="UTC"), created_by="ann",
                valid_loss=4.5, valid_perplexity=90.0, valid_accuracy=None, test_loss=4.6,
                test_perplexity=99.5, test_accuracy=None, analyzed_tokens=12_345,
                analysis_split="valid", states="h,c",
            )
        ]
    )


def responses_df(model_id: str, layer: int = 0, state: str = "h", words: int = 5, units: int = 4,
                 value: float | None = None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    word_id = np.repeat(np.arange(words), units)
    df = pd.DataFrame(
        dict(
            model_id=model_id, layer=layer, state=state, word_id=word_id,
            word=[f"w{i}" for i in word_id], unit=np.tile(np.arange(units), words),
            n=np.repeat(np.arange(1, words + 1), units),
        )
    )
    for c in FLOATS:
        df[c] = np.float32(value) if value is not None else rng.standard_normal(len(df)).astype(np.float32)
    return df


def full_model(root: Path, model_id: str, **kw) -> dict[str, pd.DataFrame]:
    frames = {
        "models": models_df(model_id, **kw),
        "training_metrics": pd.DataFrame(
            dict(model_id=model_id, epoch=[1, 1, 2, 2], split=["train", "valid"] * 2,
                 loss=[5.0, 4.9, 4.6, 4.5], perplexity=[148.4, 134.3, 99.5, 90.0],
                 accuracy=[None] * 4, tokens_per_s=1000.0, wall_s=1.5)
        ),
        "vocab": pd.DataFrame(
            dict(model_id=model_id, word_id=range(5), word=[f"w{i}" for i in range(5)],
                 freq=[50, 40, 30, 20, 10], pos=["NOUN", "VERB", None, "DET", "ADJ"])
        ),
        "word_responses": pd.concat(
            [responses_df(model_id, layer, state) for layer in (0, 1) for state in ("h", "c")],
            ignore_index=True,
        ),
        "coclusters": pd.DataFrame(
            dict(model_id=model_id, layer=0, state="h", k=2, axis=["word"] * 5 + ["unit"] * 4,
                 item=list(range(5)) + list(range(4)), cluster=[0, 1, 0, 1, 1, 0, 0, 1, 1])
        ),
        "gradient_flow": pd.DataFrame(
            dict(model_id=model_id, layer=0, distance=range(1, 6), grad_norm=[1.0, 0.5, 0.25, 0.1, 0.05],
                 grad_norm_std=0.01)
        ),
        "projections": pd.DataFrame(
            dict(model_id=model_id, layer=0, state="h", axis=["word"] * 2 + ["unit"] * 2, method="pca",
                 item=[0, 1, 0, 1], x=[0.5, -0.5, 1.0, -1.0], y=[0.25, -0.25, 0.0, 2.0], seed=0, params="{}")
        ),
        "corpus_tokens": pd.DataFrame(
            dict(model_id=model_id, position=range(4), document=0, word_id=[3, 0, 4, 1],
                 word=["w3", "w0", "w4", "w1"])
        ),
        "token_states": pd.DataFrame(      # values that float16 holds exactly
            dict(model_id=model_id, layer=1, state="h", unit=[0, 0, 1, 1], position=[0, 1, 0, 1],
                 value=[0.5, -0.25, 0.125, 1.0])
        ),
    }
    with store.write_partition(root, "models", model_id) as w:
        for table, df in frames.items():
            w.write(table, df)
    return frames


def describe(con, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]


def staging_entries(root: Path) -> list[str]:
    """What is in staging, besides the lock and replaced versions awaiting deletion."""
    d = root / store.STAGING_DIR
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.name != "commit.lock" and not p.name.endswith(".old"))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --------------------------------------------------------------------------- schema and views


def test_schema_module_matches_contract():
    assert list(schema.VIEWS) == list(CONTRACT)
    for name, cols in CONTRACT.items():
        view = schema.VIEWS[name]
        assert [(c.name, c.type) for c in view.columns][: len(cols)] == cols
        assert all(c.description for c in view.columns) and view.description and view.grain
    for kind in schema.KINDS.values():
        for name in kind.views:
            assert kind.key in schema.VIEWS[name].column_names
    assert "word_responses" in schema.as_markdown()


@pytest.mark.parametrize("read_only", [True, False])
def test_views_exist_with_exact_types_on_empty_store(tmp_path, read_only):
    root = tmp_path / "does-not-exist-yet"
    with store.connect(root, read_only=read_only) as con:
        for name, cols in CONTRACT.items():
            assert describe(con, name) == cols
            assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (0,)


def test_views_keep_exact_types_with_data(tmp_path):
    full_model(tmp_path, "m1")
    write_sentence(tmp_path, "s1", "m1")
    write_job(tmp_path, "j1", "m1")
    for read_only in (True, False):
        with store.connect(tmp_path, read_only=read_only) as con:
            for name, cols in CONTRACT.items():
                assert describe(con, name) == cols, name
                assert con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] > 0, name


def write_sentence(root: Path, sentence_id: str, model_id: str) -> None:
    tokens = ["the", "cat", "sat"]
    states = pd.DataFrame(
        [
            dict(sentence_id=sentence_id, model_id=model_id, position=p, token=t, layer=layer,
                 state="h", unit=u, value=np.float32(p + u / 10))
            for p, t in enumerate(tokens) for layer in (0, 1) for u in range(4)
        ]
    )
    with store.write_partition(root, "sentences", sentence_id) as w:
        w.write("sentences", pd.DataFrame([dict(
            sentence_id=sentence_id, model_id=model_id, text="the cat sat",
            created_at=pd.Timestamp("2024-05-02 08:30:00"), created_by="bob",
            prediction="down", probability=0.25)]))
        w.write("sentence_states", states)


def write_job(root: Path, job_id: str, model_id: str | None, status: str = "running") -> None:
    with store.write_partition(root, "jobs", job_id) as w:
        w.write("jobs", pd.DataFrame([dict(
            job_id=job_id, kind="analyze", model_id=model_id, status=status, progress=0.5,
            submitted_by="ann", submitted_at=pd.Timestamp("2024-05-03 09:00:00"),
            finished_at=pd.NaT, error=None, params="{}", detail="{}", started_at=pd.NaT,
            heartbeat_at=pd.NaT, worker=None, attempts=1, stage="analyze")]))


# --------------------------------------------------------------------------- round trip


def test_round_trip_all_tables(tmp_path):
    frames = full_model(tmp_path, "m1")
    full_model(tmp_path, "m2", name="other")
    write_sentence(tmp_path, "s1", "m1")
    write_job(tmp_path, "j1", "m1")
    assert store.list_partitions(tmp_path, "models") == ["m1", "m2"]
    assert store.list_partitions(tmp_path, "sentences") == ["s1"]
    assert store.list_partitions(tmp_path, "jobs") == ["j1"]
    wr_file = store.table_file(tmp_path, "models", "m1", "word_responses")
    assert wr_file is not None and wr_file.parent == tmp_path / "models" / "model_id=m1"
    assert store.table_file(tmp_path, "jobs", "j1", "jobs").name.startswith("jobs.")
    assert staging_entries(tmp_path) == []

    con = store.connect(tmp_path)
    for table, expected in frames.items():
        got = store.query(con, f"SELECT * FROM {table} WHERE model_id = ? ORDER BY ALL", ["m1"])
        want = expected.sort_values(list(expected.columns)).reset_index(drop=True)
        assert list(got.columns) == list(expected.columns)
        assert len(got) == len(want), table
        for col in expected.columns:
            g, e = got[col], want[col]
            if col == "created_at":
                assert (g == pd.Timestamp("2024-05-01 12:00:00")).all()  # stored as naive UTC
            elif e.dtype.kind == "f":
                np.testing.assert_allclose(g.to_numpy(float), e.to_numpy(float), rtol=1e-6, equal_nan=True)
            else:
                assert [None if pd.isna(x) else x for x in g] == [None if pd.isna(x) else x for x in e], (table, col)
    # Sort order on disk follows the view's sort_by.
    pf = pq.read_table(wr_file)
    df = pf.to_pandas()
    assert df.equals(df.sort_values(["layer", "state", "word_id", "unit"]).reset_index(drop=True))
    # Filters on the partition key and on ordinary columns both work, with parameters.
    n = store.query(con, "SELECT count(*) AS n FROM word_responses WHERE model_id = $m AND layer = 1 AND state = 'c'",
                    {"m": "m2"})["n"].item()
    assert n == 20
    states = store.query(con, "SELECT * FROM sentence_states WHERE sentence_id = 's1'")
    assert len(states) == 3 * 2 * 4 and states["token"].iloc[0] in {"the", "cat", "sat"}
    job = store.query(con, "SELECT * FROM jobs")
    assert job["status"].tolist() == ["running"] and job["finished_at"].isna().all()
    con.close()


def test_write_accepts_arrow_and_casts_types(tmp_path):
    table = pa.table(
        {
            "model_id": pa.array(["m1"] * 3).dictionary_encode(),
            "word_id": pa.array([0, 1, 2], pa.int64()),
            "word": pa.array(["a", "b", "c"], pa.large_string()),
            "freq": pa.array([3, 2, 1], pa.int8()),
            "pos": pa.array([None, None, None], pa.null()),
        }
    )
    with store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", pa.Table.from_pandas(models_df("m1"), preserve_index=False))
        w.write("vocab", table.to_batches()[0])
    meta = pq.read_schema(store.table_file(tmp_path, "models", "m1", "vocab"))
    assert meta.field("word_id").type == pa.int32() and meta.field("freq").type == pa.int64()
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT word, freq FROM vocab ORDER BY word_id").fetchall() == [("a", 3), ("b", 2), ("c", 1)]


@pytest.mark.parametrize("read_only", [True, False])
def test_connection_sees_later_commits_and_deletes(tmp_path, read_only):
    con = store.connect(tmp_path, read_only=read_only)  # empty store
    full_model(tmp_path, "m1")
    full_model(tmp_path, "m2")
    write_sentence(tmp_path, "s1", "m1")
    assert con.execute("SELECT count(*) FROM models").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM gradient_flow").fetchone() == (10,)
    assert con.execute("SELECT count(DISTINCT position) FROM sentence_states").fetchone() == (3,)
    for model_id in ("m1", "m2"):
        store.delete_partition(tmp_path, "models", model_id)
    assert con.execute("SELECT count(*) FROM word_responses").fetchone() == (0,)
    assert describe(con, "word_responses") == CONTRACT["word_responses"]
    con.close()


# --------------------------------------------------------------------------- replace and delete


def test_replace_partition(tmp_path):
    full_model(tmp_path, "m1", name="v1")
    v1_file = store.table_file(tmp_path, "models", "m1", "word_responses")
    with store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", models_df("m1", name="v2"))
        w.write("word_responses", responses_df("m1", words=2, units=3, value=7.0))
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT name FROM models").fetchall() == [("v2",)]
        assert con.execute("SELECT count(*), min(mean), max(mean) FROM word_responses").fetchone() == (6, 7.0, 7.0)
        # Tables not rewritten are gone: a partition is replaced whole.
        assert con.execute("SELECT count(*) FROM vocab").fetchone() == (0,)
    files = sorted(p.name.split(".")[0] for p in (tmp_path / "models" / "model_id=m1").iterdir())
    assert files == ["models", "word_responses"]
    # A path is never reused for other content (DuckDB may read footer and data at different times).
    assert store.table_file(tmp_path, "models", "m1", "word_responses") != v1_file
    assert not v1_file.exists()
    assert staging_entries(tmp_path) == []


def test_replace_keeping_tables_from_previous_version(tmp_path):
    frames = full_model(tmp_path, "m1")
    with store.write_partition(tmp_path, "models", "m1") as w:
        assert w.keep("models") and w.keep("training_metrics")
        assert w.keep("vocab")
        with pytest.raises(store.StoreError, match="already kept"):
            w.write("vocab", frames["vocab"])
        w.write("word_responses", responses_df("m1", value=3.0))
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM training_metrics").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM vocab").fetchone() == (5,)
        assert con.execute("SELECT DISTINCT mean FROM word_responses").fetchall() == [(3.0,)]
    with store.write_partition(tmp_path, "models", "new") as w:
        assert w.keep("training_metrics") is False
        w.write("models", models_df("new"))


def test_replace_without_atomic_exchange(tmp_path, monkeypatch):
    # File systems without renameat2(RENAME_EXCHANGE) (e.g. NFS) take the two-rename path.
    monkeypatch.setattr(store_paths, "_exchange", lambda a, b: False)
    full_model(tmp_path, "m1", name="v1")
    full_model(tmp_path, "m1", name="v2")
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT name FROM models").fetchall() == [("v2",)]
    assert staging_entries(tmp_path) == []


def test_replaced_versions_are_deleted_after_a_grace_period(tmp_path, monkeypatch):
    monkeypatch.setattr(store_paths, "RETIRE_GRACE_S", 0.2)
    full_model(tmp_path, "m1", name="v1")
    v1_file = store.table_file(tmp_path, "models", "m1", "models")
    full_model(tmp_path, "m1", name="v2")
    retired = [p for p in (tmp_path / store.STAGING_DIR).iterdir() if p.name.endswith(".old")]
    assert len(retired) == 1 and (retired[0] / v1_file.name).exists()  # still listable by readers
    deadline = time.monotonic() + 30
    while retired[0].exists():  # its timer deletes it once the grace period is over
        assert time.monotonic() < deadline, "the replaced version was never deleted"
        time.sleep(0.02)
    # A retired version whose timer died with its process is swept by the next commit.
    orphan = tmp_path / store.STAGING_DIR / "models.m1.orphan.old"
    orphan.mkdir()
    past = time.time() - 10
    os.utime(orphan, (past, past))
    full_model(tmp_path, "m1", name="v3")
    assert not orphan.exists()


def test_delete_partition(tmp_path):
    full_model(tmp_path, "m1")
    full_model(tmp_path, "m2")
    con = store.connect(tmp_path)
    store.delete_partition(tmp_path, "models", "m1")
    assert store.list_partitions(tmp_path, "models") == ["m2"]
    assert store.query(con, "SELECT DISTINCT model_id FROM word_responses")["model_id"].tolist() == ["m2"]
    with pytest.raises(store.UnknownModelError, match="known models: m2") as info:
        store.delete_partition(tmp_path, "models", "m1")
    assert isinstance(info.value, store.StoreError) and info.value.model_id == "m1"
    store.delete_partition(tmp_path, "models", "m1", missing_ok=True)
    with pytest.raises(store.UnknownModelError):
        store.require_model(tmp_path, "m1")
    store.require_model(tmp_path, "m2")
    store.delete_partition(tmp_path, "models", "m2")
    assert staging_entries(tmp_path) == []
    con.close()
    with store.connect(tmp_path) as con:  # every partition gone: views are empty, not broken
        assert con.execute("SELECT count(*) FROM word_responses").fetchone() == (0,)
        assert describe(con, "models") == CONTRACT["models"]


# --------------------------------------------------------------------------- failures and validation


def test_exception_inside_with_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with store.write_partition(tmp_path, "models", "m1") as w:
            w.write("models", models_df("m1"))
            w.write("word_responses", responses_df("m1"))
            raise RuntimeError("boom")
    assert store.list_partitions(tmp_path, "models") == []
    assert staging_entries(tmp_path) == []
    assert not (tmp_path / "models" / "model_id=m1").exists()


def test_exception_leaves_existing_partition_untouched(tmp_path):
    full_model(tmp_path, "m1", name="v1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "models" / "model_id=m1").iterdir()}
    with pytest.raises(store.SchemaMismatchError):
        with store.write_partition(tmp_path, "models", "m1") as w:
            w.write("models", models_df("m1", name="v2"))
            w.write("word_responses", responses_df("m1").drop(columns=["q90"]))
    after = {p.name: p.read_bytes() for p in (tmp_path / "models" / "model_id=m1").iterdir()}
    assert after == before
    assert staging_entries(tmp_path) == []


@pytest.mark.parametrize(
    "bad", ["", "../etc", "a/b", ".hidden", "-x", "a b", "x" * 129, "é", "a\x00b", "..", "m1/../m2", None]
)
def test_invalid_ids_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="invalid"):
        store.write_partition(tmp_path, "models", bad)
    with pytest.raises(ValueError, match="invalid"):
        store.delete_partition(tmp_path, "sentences", bad)
    with pytest.raises(ValueError, match="invalid"):
        store.checkpoint_path(tmp_path, bad)
    with pytest.raises(ValueError, match="invalid"):
        store.partition_path(tmp_path, "jobs", bad)
    assert list(tmp_path.iterdir()) == []


def test_valid_ids_and_paths(tmp_path):
    for ok in ["a", "A.b-c_1", "x" * 128, "0", "run.2024-05-01"]:
        assert store.validate_id(ok) == ok
    assert store.checkpoint_path(tmp_path, "m1") == tmp_path / "checkpoints" / "m1.pt"
    with pytest.raises(ValueError, match="unknown partition kind"):
        store.write_partition(tmp_path, "model", "m1")


def test_schema_checks_on_write(tmp_path):
    with store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", models_df("m1"))
        with pytest.raises(store.SchemaMismatchError, match="missing column.*q50"):
            w.write("word_responses", responses_df("m1").drop(columns=["q50"]))
        with pytest.raises(store.SchemaMismatchError, match="unknown column.*extra"):
            w.write("word_responses", responses_df("m1").assign(extra=1))
        with pytest.raises(store.SchemaMismatchError, match="word_responses.unit"):
            w.write("word_responses", responses_df("m1").assign(unit="not a number"))
        with pytest.raises(store.SchemaMismatchError, match="word_responses.layer"):
            w.write("word_responses", responses_df("m1").assign(layer=2**40))
        with pytest.raises(store.StoreError, match="model_id must be 'm1'.*'m2'"):
            w.write("word_responses", responses_df("m2"))
        with pytest.raises(store.StoreError, match="does not belong"):
            w.write("sentences", pd.DataFrame())
        with pytest.raises(KeyError, match="unknown view"):
            schema.view("nope")
        with pytest.raises(TypeError, match="DataFrame"):
            w.write("vocab", [{"model_id": "m1"}])
    # The failed writes did not poison the partition.
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM word_responses").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM models").fetchone() == (1,)


def test_primary_table_required(tmp_path):
    with pytest.raises(store.StoreError, match="no 'models' table"):
        with store.write_partition(tmp_path, "models", "m1") as w:
            w.write("word_responses", responses_df("m1"))
    assert store.list_partitions(tmp_path, "models") == [] and staging_entries(tmp_path) == []


def test_writer_used_outside_with(tmp_path):
    w = store.write_partition(tmp_path, "models", "m1")
    with pytest.raises(store.StoreError, match="inside `with"):
        w.write("models", models_df("m1"))
    with w:
        w.write("models", models_df("m1"))
    with pytest.raises(store.StoreError, match="committed"):
        w.write("models", models_df("m1"))


# --------------------------------------------------------------------------- streaming and compactness


def test_streaming_chunks_into_one_file(tmp_path):
    rng = np.random.default_rng(1)
    chunks = []
    with store.write_partition(tmp_path, "models", "m1", row_group_rows=1000) as w:
        w.write("models", models_df("m1"))
        for layer in (0, 1):
            for state in ("c", "h", "i"):  # one (layer, state) at a time, rows shuffled
                df = responses_df("m1", layer, state, words=50, units=16, seed=layer * 10 + len(state))
                df = df.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)
                chunks.append(df)
                total = w.write("word_responses", df)
        assert total == 6 * 800 == w.rows["word_responses"]
    path = store.table_file(tmp_path, "models", "m1", "word_responses")
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == 4800
    assert pf.metadata.num_row_groups == 5  # 1000-row groups: 4 full + 1 tail
    assert all(pf.metadata.row_group(i).num_rows == 1000 for i in range(4))
    col = {pf.metadata.schema.column(i).name: pf.metadata.row_group(0).column(i) for i in range(14)}
    assert col["mean"].compression == "ZSTD"
    assert "BYTE_STREAM_SPLIT" in col["mean"].encodings
    assert any("DICT" in e for e in col["word"].encodings)
    on_disk = pf.read().to_pandas()
    assert on_disk.equals(on_disk.sort_values(["layer", "state", "word_id", "unit"]).reset_index(drop=True))
    expected = pd.concat(chunks).sort_values(["layer", "state", "word_id", "unit"]).reset_index(drop=True)
    with store.connect(tmp_path) as con:
        got = store.query(con, "SELECT * FROM word_responses ORDER BY layer, state, word_id, unit")
    np.testing.assert_array_equal(got["q75"].to_numpy(), expected["q75"].to_numpy())
    assert (got["word"] == expected["word"]).all()


def test_word_responses_are_compact(tmp_path):
    words, units = 1000, 200  # 200k rows of random float32 statistics
    with store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", models_df("m1"))
        w.write("word_responses", responses_df("m1", words=words, units=units, seed=3))
    size = store.table_file(tmp_path, "models", "m1", "word_responses").stat().st_size
    # 7 random float32 columns are ~3.7 B each after zstd; ids and strings nearly free.
    assert size / (words * units) < 28.5


# --------------------------------------------------------------------------- staging and settings


def test_clean_staging(tmp_path):
    staging = tmp_path / store.STAGING_DIR
    old = staging / "models.m1.deadbeef.tmp"
    old.mkdir(parents=True)
    (old / "word_responses.parquet").write_bytes(b"PAR1 partial")
    past = time.time() - 7200
    os.utime(old / "word_responses.parquet", (past, past))
    os.utime(old, (past, past))
    young = staging / "models.m2.cafe.tmp"
    young.mkdir()
    assert store.clean_staging(tmp_path) == ["models.m1.deadbeef.tmp"]
    assert not old.exists() and young.exists()
    assert store.clean_staging(tmp_path, older_than_s=0) == ["models.m2.cafe.tmp"]
    assert store.clean_staging(tmp_path / "nothing-here") == []


def test_clean_staging_spares_live_writers(tmp_path):
    with store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", models_df("m1"))
        past = time.time() - 7200
        for p in [*w.staging.iterdir(), w.staging]:
            os.utime(p, (past, past))
        assert store.clean_staging(tmp_path, older_than_s=0) == []  # this process is alive
        assert w.staging.exists()
    assert store.list_partitions(tmp_path, "models") == ["m1"]


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNVIS_STORE", str(tmp_path / "s"))
    assert store.default_root() == tmp_path / "s"
    monkeypatch.delenv("RNNVIS_STORE")
    monkeypatch.chdir(tmp_path)
    assert store.default_root() == tmp_path / "var" / "store"


# --------------------------------------------------------------------------- read-only connections


def test_read_only_connection_is_confined_to_the_store(tmp_path):
    full_model(tmp_path, "m1")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    outside.write_text("a,b\n1,2\n")
    with store.connect(tmp_path) as con:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_csv('{outside}')").fetchall()
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute("SET threads = 1")
        assert con.execute("SELECT count(*) FROM models").fetchone() == (1,)
    with store.connect(tmp_path, read_only=False) as con:  # private and unrestricted
        assert con.execute(f"SELECT a FROM read_csv('{outside}')").fetchall() == [(1,)]


def test_read_only_views_are_restored_if_tampered_with(tmp_path):
    full_model(tmp_path, "m1")
    con = store.connect(tmp_path)
    con.execute("DROP VIEW word_responses")
    con.execute("CREATE OR REPLACE VIEW models AS SELECT 42 AS answer")
    con.execute("CREATE TEMP VIEW vocab AS SELECT 1 AS x")  # temp objects are private to a cursor
    with store.connect(tmp_path) as other:
        assert describe(other, "models") == CONTRACT["models"]
        assert describe(other, "vocab") == CONTRACT["vocab"]
        assert other.execute("SELECT count(*) FROM word_responses").fetchone() == (80,)
    con.close()


def test_read_only_connections_are_cursors_of_one_database(tmp_path):
    """Why connect() is cheap (about 1 ms, not a new DuckDB instance of 15-30 ms): read-only connections of
    one store in one process are cursors of one database, whose views are made once."""
    for i in range(3):
        full_model(tmp_path, f"m{i}")
    with store.connect(tmp_path) as first:
        first.execute("CREATE TABLE probe AS SELECT 42 AS x")  # in that shared database (temp objects are not)
    for _ in range(3):
        with store.connect(tmp_path) as con:
            assert con.execute("SELECT x FROM probe").fetchall() == [(42,)]
            assert con.execute("SELECT count(*) FROM models").fetchone() == (3,)
    with store.connect(tmp_path, read_only=False) as private:  # the unrestricted kind is a database of its own
        assert private.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'probe'").fetchone() == (0,)


# --------------------------------------------------------------------------- real processes

WRITER_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from tests_child_frames import models_df, responses_df
    from analytics import store

    root, ready = Path(sys.argv[1]), Path(sys.argv[2])
    with store.write_partition(root, "models", "m1", row_group_rows=20_000) as w:
        w.write("models", models_df("m1", name="v2"))
        for i in range(100_000):
            w.write("word_responses", responses_df("m1", layer=i, words=500, units=40, value=2.0))
            if i == 3:
                ready.write_text("writing")
            if i >= 3:
                time.sleep(0.05)
    """
)

FRAMES_MODULE = "\n".join(
    [
        "import json",
        "import numpy as np",
        "import pandas as pd",
        "FLOATS = " + repr(FLOATS),
    ]
)


def _child_frames_dir(tmp_path: Path) -> Path:
    """A module with the frame builders for child processes (they cannot import this test file)."""
    import inspect

    d = tmp_path / "childmods"
    d.mkdir(exist_ok=True)
    src = FRAMES_MODULE + "\n\n" + inspect.getsource(models_df) + "\n\n" + inspect.getsource(responses_df)
    (d / "tests_child_frames.py").write_text(src)
    return d


@pytest.mark.parametrize("existing", [True, False], ids=["replace", "new"])
def test_sigkill_mid_write_leaves_no_partial_partition(tmp_path, existing):
    root = tmp_path / "store"
    if existing:
        with store.write_partition(root, "models", "m1") as w:
            w.write("models", models_df("m1", name="v1"))
            w.write("word_responses", responses_df("m1", value=1.0))
    full_model(root, "other")
    ready = tmp_path / "ready"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(ready), str(_child_frames_dir(tmp_path))],
        env=child_env(), cwd=REPO, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "writer never got going"
            time.sleep(0.02)
        # The child is writing row groups into its staging directory right now.
        leftovers = staging_entries(root)
        assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")
        (partial,) = (root / store.STAGING_DIR / leftovers[0]).glob("word_responses.*.parquet")
        assert partial.stat().st_size > 0
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    expected_models = ["m1", "other"] if existing else ["other"]
    assert store.list_partitions(root, "models") == expected_models
    with store.connect(root) as con:
        for name in CONTRACT:  # every view still answers
            con.execute(f"SELECT * FROM {name} LIMIT 5").fetchall()
        rows = con.execute(
            "SELECT count(*), min(mean), max(mean) FROM word_responses WHERE model_id = 'm1'"
        ).fetchone()
        names = con.execute("SELECT name FROM models WHERE model_id = 'm1'").fetchall()
    if existing:  # the old version, intact
        assert rows == (20, 1.0, 1.0) and names == [("v1",)]
    else:
        assert rows == (0, None, None) and names == []

    # The leftover is only in staging; cleaning removes it; re-running the write replaces.
    assert store.clean_staging(root, older_than_s=0) == leftovers
    with store.write_partition(root, "models", "m1") as w:
        w.write("models", models_df("m1", name="v3"))
        w.write("word_responses", responses_df("m1", value=3.0))
    with store.connect(root) as con:
        assert con.execute("SELECT name FROM models WHERE model_id = 'm1'").fetchall() == [("v3",)]
        assert con.execute(
            "SELECT count(*), min(mean), max(mean) FROM word_responses WHERE model_id = 'm1'"
        ).fetchone() == (20, 3.0, 3.0)


READER_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from analytics import store

    root, ready, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    errors, seen, loops, absent = [], set(), 0, 0
    ready.write_text("reading")
    deadline = time.monotonic() + 120
    while not stop.exists() and time.monotonic() < deadline:
        loops += 1
        progress = ready.with_name("progress.tmp")
        progress.write_text(f"{loops} {len(seen)}")
        progress.replace(ready.with_name("progress"))  # for the writer: how far this reader got
        try:
            with store.connect(root) as con:
                n, lo, hi, words = store.query(
                    con,
                    "SELECT count(*), min(mean), max(mean), count(DISTINCT word) "
                    "FROM word_responses WHERE model_id = ?", ["m1"]).iloc[0].tolist()
                names = store.query(con, "SELECT name FROM models WHERE model_id = 'm1'")["name"].tolist()
                for view in ("vocab", "coclusters", "sentence_states", "jobs"):
                    store.query(con, f"SELECT count(*) FROM {view}")
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            continue
        if n == 0:  # listed at the instant of a swap: absent, as if not written yet
            absent += 1
            continue
        version = int(lo)
        seen.add(version)
        if lo != hi or n != 100 * (version % 3 + 1) * 4 or words != 100 * (version % 3 + 1):
            errors.append(f"partial word_responses: n={n} lo={lo} hi={hi} words={words}")
        if not names:
            absent += 1
        elif len(names) != 1 or not names[0].startswith("v"):
            errors.append(f"models rows {names}")
    print(json.dumps({"errors": errors[:20], "n_errors": len(errors), "loops": loops, "seen": sorted(seen),
                      "absent": absent}))
    """
)


def test_concurrent_reader_never_sees_partial_partition(tmp_path):
    root = tmp_path / "store"

    def write_version(v: int) -> None:
        with store.write_partition(root, "models", "m1") as w:
            w.write("models", models_df("m1", name=f"v{v}"))
            w.write("word_responses", responses_df("m1", words=100 * (v % 3 + 1), units=4, value=float(v)))

    write_version(1)
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    script = tmp_path / "reader.py"
    script.write_text(READER_CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(ready), str(stop)],
        env=child_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        def reader_got_far() -> bool:  # enough reads, of enough versions, to have caught a partial one
            try:
                loops, seen = map(int, (tmp_path / "progress").read_text().split())
            except (FileNotFoundError, ValueError):
                return False
            return loops > 10 and seen > 3

        deadline = time.monotonic() + 120
        v = 1
        while not reader_got_far():  # a new version every ~50 ms (the pace, not a wait): more than in real use
            assert time.monotonic() < deadline and proc.poll() is None, "the reader made no progress"
            v += 1
            write_version(v)
            time.sleep(0.03)
        stop.write_text("stop")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["n_errors"] == 0, report["errors"]
    assert report["loops"] > 10 and len(report["seen"]) > 3, report
    assert report["absent"] <= max(2, report["loops"] // 50), report  # rare: only at the instant of a swap
    assert staging_entries(root) == []


@pytest.mark.parametrize("durable", [True, False])
def test_non_durable_partitions_skip_fsync_but_commit_atomically(tmp_path, monkeypatch, durable):
    synced: list[Path] = []
    real = store_paths._fsync_path
    monkeypatch.setattr(store_paths, "_fsync_path", lambda p, directory=False: (synced.append(Path(p)), real(p, directory)))
    for text in ("first", "second"):   # a new partition, then a replaced one (exchange)
        with store.write_partition(tmp_path, "sentences", "s1", durable=durable) as w:
            w.write("sentences", pd.DataFrame([dict(
                sentence_id="s1", model_id="m1", text=text, created_at=pd.Timestamp("2024-01-01"),
                created_by="t", prediction=None, probability=None)]))
    assert bool(synced) == durable
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT text FROM sentences").fetchall() == [("second",)]
    assert store.list_partitions(tmp_path, "sentences") == ["s1"]
    assert not [n for n in staging_entries(tmp_path) if n.endswith(".tmp")]
