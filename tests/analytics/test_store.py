"""Tests of analytics.store: real DuckDB, real Parquet files (real processes: test_store_crash.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import schema, store
from analytics.store import paths as store_paths
from tests.analytics.store_frames import CONTRACT, describe, full_model, models_df, responses_df, staging_entries

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
    with pytest.raises(RuntimeError, match="boom"), store.write_partition(tmp_path, "models", "m1") as w:
        w.write("models", models_df("m1"))
        w.write("word_responses", responses_df("m1"))
        raise RuntimeError("boom")
    assert store.list_partitions(tmp_path, "models") == []
    assert staging_entries(tmp_path) == []
    assert not (tmp_path / "models" / "model_id=m1").exists()


def test_exception_leaves_existing_partition_untouched(tmp_path):
    full_model(tmp_path, "m1", name="v1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "models" / "model_id=m1").iterdir()}
    with pytest.raises(store.SchemaMismatchError), store.write_partition(tmp_path, "models", "m1") as w:
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
    with pytest.raises(store.StoreError, match="no 'models' table"), \
            store.write_partition(tmp_path, "models", "m1") as w:
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


@pytest.mark.parametrize("durable", [True, False])
def test_non_durable_partitions_skip_fsync_but_commit_atomically(tmp_path, monkeypatch, durable):
    synced: list[Path] = []
    real = store_paths._fsync_path
    monkeypatch.setattr(store_paths, "_fsync_path",
                        lambda p, directory=False: (synced.append(Path(p)), real(p, directory)))
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
