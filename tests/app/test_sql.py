"""SQL console: examples, grid, downloads, saved queries, and the app serving on after a runaway query."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics import saved_queries
from analytics.settings import Settings
from app import ids
from app.cli import main
from app.logic import sql as logic
from app.server import create_app
from tests.app.dispatching import request_body


@pytest.mark.parametrize("index", range(len(logic.EXAMPLES)))
def test_every_example_runs_on_the_tiny_store(app_store, index):
    title, sql = logic.EXAMPLES[index]
    res = logic.run(app_store, sql)
    assert not res.truncated, title
    if "respond most to 'he'" in title:
        assert list(res.frame.columns)[:4] == ["model_id", "layer", "state", "unit"]
        assert len(res.frame) <= 10 and set(res.frame["model_id"]) <= {"tiny-lstm"}
    if "differs most" in title:
        assert len(res.frame) > 0 and {"word", "strength_a", "strength_b", "difference"} <= set(res.frame.columns)
        zs = res.frame["z"].abs().tolist()
        assert zs == sorted(zs, reverse=True)                   # ranked by z, not by the raw difference
        assert (res.frame["n_a"] >= 5).all() and (res.frame["n_b"] >= 5).all()   # no word seen once on top
        top = res.frame.iloc[0]                                 # z of the top word, recomputed from its raw rows
        raw = logic.run(app_store, "SELECT model_id, mean, std, n FROM word_responses WHERE layer = 0 AND "
                                   f"state = 'h' AND word = '{top['word']}' ORDER BY model_id").frame
        a, b = (g for _, g in raw.groupby("model_id", sort=True))
        se = [np.sqrt((g["std"] ** 2).mean() / g["n"].max() / len(g)) for g in (a, b)]
        diff = b["mean"].abs().mean() - a["mean"].abs().mean()
        assert top["z"] == pytest.approx(diff / np.hypot(*se), abs=0.051) and top["n_a"] == a["n"].max()


def test_grid_data_handles_odd_columns_and_values():
    frame = pd.DataFrame({"a": [1, 2], "b": [[1, 2], None], "c": [{"x": 1}, {"x": 2}], "d": [float("nan"), 1.5],
                          "t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "e": [b"\x00\x01", b""]})
    frame.columns = ["a", "b", "a", "d", "t", "e"]  # duplicate names are fine
    columns, records = logic.grid_data(frame)
    assert [c["field"] for c in columns] == ["c0", "c1", "c2", "c3", "c4", "c5"] and columns[2]["headerName"] == "a"
    # numbers align and sort as numbers; a text cell shows its whole value on hover
    assert columns[3]["type"] == "numericColumn" and columns[1]["tooltipField"] == "c1" and "type" not in columns[1]
    assert records[0] == {"c0": 1, "c1": "[1, 2]", "c2": '{"x": 1}', "c3": None, "c4": "2024-01-01T00:00:00",
                          "c5": "0001"}
    json.dumps(records)


def test_run_for_grid_caps_rows_and_explains_refusals(app_store):
    cols, rows, msg, last = logic.run_for_grid(app_store, "SELECT * FROM range(20000)")
    assert len(rows) == logic.GRID_MAX_ROWS and "Row limit" in json.dumps(msg.to_plotly_json(), default=str)
    assert last == "SELECT * FROM range(20000)"
    cols, rows, msg, last = logic.run_for_grid(app_store, "DROP VIEW models")
    assert rows == [] and last is None and "not DROP" in str(msg.to_plotly_json())


def test_downloads_csv_and_parquet(app_store):
    sql = "SELECT model_id, cell, layers FROM models ORDER BY model_id"
    csv = logic.download(app_store, sql, "csv")
    assert csv["filename"] == "rnnvis-query.csv"
    assert pd.read_csv(io.StringIO(csv["content"]))["model_id"].tolist() == ["tiny-gru", "tiny-lstm"]
    pq_payload = logic.download(app_store, sql, "parquet")
    import base64
    table = pq.read_table(io.BytesIO(base64.b64decode(pq_payload["content"])))
    assert table.column("model_id").to_pylist() == ["tiny-gru", "tiny-lstm"]


def test_saved_queries_are_per_user_and_record_who(tmp_path):
    opts, _ = logic.save(tmp_path, "ann", "mine", "SELECT 1")
    assert logic.names(opts) == ["mine"]
    logic.save(tmp_path, "bob", "his", "SELECT 2")
    assert logic.names(logic.saved_options(tmp_path, "ann")) == ["mine"]
    assert logic.saved_sql(tmp_path, "bob", "his") == "SELECT 2"
    q = saved_queries.list_queries(tmp_path, "ann")[0]
    assert q["created_by"] == "ann" and q["created_at"]
    logic.save(tmp_path, "ann", "mine", "SELECT 3")            # replace by name
    assert logic.saved_sql(tmp_path, "ann", "mine") == "SELECT 3"
    _, msg = logic.save(tmp_path, "ann", "", "SELECT 1")
    assert "name" in str(msg.to_plotly_json())
    opts, _ = logic.delete(tmp_path, "ann", "mine")
    assert opts == []
    with pytest.raises(saved_queries.SavedQueryError):
        saved_queries.list_queries(tmp_path, "../etc")


def test_cli_sandbox_uses_the_same_limits(app_store, capsys):
    assert main(["--store", str(app_store), "sql", "--sandbox", "--max-rows", "3", "--format", "json",
                 "SELECT range AS x FROM range(10)"]) == 0
    out, err = capsys.readouterr()
    assert [r["x"] for r in json.loads(out)] == [0, 1, 2] and "Row limit" in err
    assert main(["--store", str(app_store), "sql", "--sandbox", "SELECT * FROM read_text('/etc/passwd')"]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert main(["--store", str(app_store), "sql", "--sandbox", "--timeout", "0.5",
                 "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t"]) == 2
    assert "Time limit" in capsys.readouterr().err


def _query_running(root) -> bool:
    """True while a console query of this store holds one of the machine's slots: the sign it has started."""
    from analytics.sandbox.slots import held_slots
    return held_slots(root) > 0


def _run(app, sql: str, client=None):
    """Click Run with ``sql`` in the editor, through Dash's dispatch; the raw response."""
    body = request_body(app, ids.SQL_TABLE, {ids.SQL_EDITOR: sql, ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")
    return (client or app.server.test_client()).post("/_dash-update-component", json=body)


def test_app_keeps_serving_during_and_after_a_runaway_query(app_store, monkeypatch):
    monkeypatch.setattr(logic, "TIMEOUT_S", 8.0)  # room for the other requests to be answered first when loaded
    app = create_app(Settings(store=app_store))
    client = app.server.test_client()
    assert client.get("/healthz").status_code == 200

    slow: dict = {}
    th = threading.Thread(target=lambda: slow.update(r=_run(app,
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t")))
    th.start()
    deadline = time.monotonic() + 60
    while not _query_running(app_store):  # the runaway query has started when it holds a slot
        assert time.monotonic() < deadline, "the runaway query never started"
        time.sleep(0.01)
    assert client.get("/healthz").status_code == 200
    fast = _run(app, "SELECT model_id FROM models ORDER BY 1", client)
    assert [r["c0"] for r in fast.json["response"]["sql-table"]["rowData"]] == ["tiny-gru", "tiny-lstm"]
    assert th.is_alive() and _query_running(app_store)  # answered while the runaway query still runs
    th.join(60)
    assert slow["r"].status_code == 200 and "Time limit" in slow["r"].text
    after = _run(app, "SELECT count(*) AS n FROM vocab", client)
    assert after.json["response"]["sql-table"]["rowData"][0]["c0"] > 0
    assert client.get("/sql").status_code == 200


def test_grid_and_downloads_are_capped_in_bytes(app_store):
    cols, rows, msg, last = logic.run_for_grid(app_store, "SELECT repeat('x', 20000) AS s FROM range(10000)")
    assert 0 < len(rows) < 10_000 and "Size limit" in json.dumps(msg.to_plotly_json(), default=str)
    assert len(json.dumps(rows)) < 1.2 * logic.GRID_MAX_BYTES          # was a 191 MB grid
    csv = logic.download(app_store, "SELECT repeat('x', 2000) AS s FROM range(200000)", "csv")
    assert 0 < len(csv["content"]) < 1.2 * logic.DOWNLOAD_MAX_BYTES   # was a 382 MB file


def test_cli_json_of_every_setting(app_store, capsys):
    assert main(["--store", str(app_store), "sql", "--sandbox", "--format", "json", "--max-rows", "1000",
                 "SELECT * FROM duckdb_settings()"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) > 50 and {"name", "value", "typed_value"} <= set(rows[0])
    assert main(["--store", str(app_store), "sql", "--format", "json", "SELECT * FROM duckdb_settings()"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 50


def test_the_console_counts_queries_per_signed_in_user(app_store):
    """Open mode's user is ``local``: with two of its queries running elsewhere, a third is refused with a message."""
    app = create_app(Settings(store=app_store))
    assert app.server.test_client().get("/sql").status_code == 200   # the first request registers the callbacks

    code = ("import sys; from analytics.sandbox import slots as s\n"
            f"with s.query_slot({str(app_store)!r}, 'local', per_user=2, total=4):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    holders = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=Path(__file__).resolve().parents[2]) for _ in range(2)]
    try:
        assert all(h.stdout.readline().strip() == "held" for h in holders)
        r = _run(app, "SELECT model_id FROM models")
        assert r.status_code == 200 and "already have 2 queries running" in r.text
        assert r.json["response"]["sql-table"]["rowData"] == []
    finally:
        for h in holders:
            h.stdin.close()
            h.wait()
    r = _run(app, "SELECT model_id FROM models ORDER BY 1")
    assert [row["c0"] for row in r.json["response"]["sql-table"]["rowData"]] == ["tiny-gru", "tiny-lstm"]
