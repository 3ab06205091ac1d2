"""analytics.store against real processes: a writer SIGKILLed mid-write leaves no partial partition, and a
reader in another process never sees one while partitions are replaced under it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from analytics import store
from tests.analytics.store_frames import CONTRACT, REPO, child_env, full_model, models_df, responses_df, staging_entries

# --------------------------------------------------------------------------- real processes

WRITER_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.analytics.store_frames import models_df, responses_df
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
        [sys.executable, str(script), str(root), str(ready)],
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
