"""Team notes in the metadata database, on both backends (SQLite in the store, a real PostgreSQL): the three
kinds of target, the body's cut at 2,000 characters, the search over bodies, edits, removal, and a deleted
model's notes going with it."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.metadb import notes
from analytics.metadb.notes import NoteError, Target
from tests.metadata_db import metadata_db, postgres_database  # noqa: F401 - fixtures


def test_notes_on_a_model_a_cluster_and_a_unit_carry_author_and_time(metadata_db):
    db = metadata_db.db
    m, _ = notes.add(db, Target("lm-1"), "small but good", "ann")
    c, _ = notes.add(db, Target("lm-1", 0, "h", 6, 2), "quote detector", "bob")
    u, _ = notes.add(db, Target("lm-1", 1, "c", unit=5), "fires after negation", "ann")
    notes.add(db, Target("lm-2", 0, "h", unit=5), "other model", "ann")
    df = notes.query(db, model_id="lm-1")
    assert list(df["id"]) == [u, c, m]                                   # newest first
    rows = {r.id: r for r in df.itertuples(index=False)}
    assert _where(rows[m]) == (None,) * 5
    assert _where(rows[c]) == (0, "h", 6, 2, None)
    assert _where(rows[u]) == (1, "c", None, None, 5)
    assert [rows[i].author for i in (m, c, u)] == ["ann", "bob", "ann"]
    assert df["created_at"].notna().all() and df["edited_at"].isna().all()
    assert list(notes.query(db, model_id="lm-1", kind="cluster", k=6)["id"]) == [c]
    assert list(notes.query(db, model_id="lm-1", kind="cluster", k=5)["id"]) == []
    assert list(notes.query(db, model_id="lm-1", kind="unit")["id"]) == [u]
    assert list(notes.query(db, model_id="lm-1", kind="model")["id"]) == [m]
    assert notes.get(db, c)["body"] == "quote detector" and notes.get(db, 10**9) is None


def _where(r) -> tuple:
    """(layer, state, k, cluster, unit) of a row, a missing value as None."""
    return tuple(None if pd.isna(v) else v for v in (r.layer, r.state, r.k, r.cluster, r.unit))


def test_a_long_body_is_cut_at_the_limit_and_an_empty_one_refused(metadata_db):
    db = metadata_db.db
    body = "x" * (notes.MAX_BODY + 500)
    i, cut = notes.add(db, Target("m"), body, "ann")
    assert cut and len(notes.get(db, i)["body"]) == notes.MAX_BODY == 2000
    i2, cut = notes.add(db, Target("m"), "  exactly this  ", "ann")
    assert not cut and notes.get(db, i2)["body"] == "exactly this"
    for bad in ("", "   ", None, 42):
        with pytest.raises(NoteError, match="Write the note first"):
            notes.add(db, Target("m"), bad, "ann")
    with pytest.raises(NoteError, match="needs the k"):
        notes.add(db, Target("m", 0, "h", None, 2), "x", "ann")
    with pytest.raises(NoteError, match="layer and state"):
        notes.add(db, Target("m", unit=3), "x", "ann")
    assert len(notes.query(db)) == 2                                     # nothing half-written


def test_search_is_over_bodies_case_insensitive_and_literal(metadata_db):
    db = metadata_db.db
    a, _ = notes.add(db, Target("m"), "Quote Detector", "ann")
    b, _ = notes.add(db, Target("m", 0, "h", unit=1), "100% sure: fires on a_b", "bob")
    notes.add(db, Target("m", 0, "h", unit=2), "1000 sure; fires on axb", "bob")
    assert list(notes.query(db, text="quote")["id"]) == [a]
    assert list(notes.query(db, text="100%")["id"]) == [b]               # % and _ are plain characters
    assert list(notes.query(db, text="a_b")["id"]) == [b]
    assert notes.query(db, text="author").empty                          # bodies only


def test_edit_replaces_the_body_and_marks_it_edited_remove_takes_one(metadata_db):
    db = metadata_db.db
    i, _ = notes.add(db, Target("m"), "first", "ann")
    j, _ = notes.add(db, Target("m"), "other", "ann")
    assert notes.edit(db, i, "y" * 2500) is True
    assert notes.get(db, i)["body"] == "y" * 2000 and notes.get(db, i)["edited_at"] is not None
    assert notes.remove(db, i) and not notes.remove(db, i)
    with pytest.raises(NoteError, match="gone"):
        notes.edit(db, i, "again")
    assert list(notes.query(db)["id"]) == [j]


def test_a_deleted_models_notes_go_with_it_and_no_other(metadata_db):
    db = metadata_db.db
    for model in ("gone", "kept"):
        notes.add(db, Target(model), "model note", "ann")
        notes.add(db, Target(model, 0, "h", 3, 1), "cluster note", "ann")
        notes.add(db, Target(model, 0, "h", unit=4), "unit note", "ann")
    assert notes.remove_model(db, "gone") == 3
    assert set(notes.query(db)["model_id"]) == {"kept"} and len(notes.query(db)) == 3
    with db.read() as con:                                               # independently of query()
        assert con.execute(sa.text("SELECT count(*) FROM notes WHERE model_id = 'gone'")).scalar() == 0


def test_rnnvis_delete_takes_the_models_notes(metadata_db, capsys):
    from analytics.metadb import audit
    from app.cli import main
    from models.checkpoint import checkpoint_file
    root = metadata_db.root
    ckpt = checkpoint_file(root, "m-gone")          # a checkpoint alone is a model `rnnvis delete` deletes
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"not really a checkpoint")
    notes.add(root, Target("m-gone", 0, "h", unit=1), "bye", "ann")
    notes.add(root, Target("m-kept"), "stays", "ann")
    assert main(["--store", str(root), "delete", "m-gone"]) == 0 and "deleted m-gone" in capsys.readouterr().out
    assert list(notes.query(root)["body"]) == ["stays"]
    assert audit.query(root, action="model deleted")["details"][0] == "rnnvis delete; 1 notes removed"
