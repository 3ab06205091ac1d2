"""SQL console caps that count what the web process builds (issue 20, item 1): NULL columns and lists of NULLs
cost their rendered text, not their Arrow bytes (zero), so the grid, the frame and the CSV stay bounded.

Each hostile query runs in the real sandbox process on real DuckDB, reached through Dash's dispatch; the test
process's own allocations (tracemalloc: the frame, the grid's records, the JSON answer) are bounded generously.
Before the fix: a 184 MB grid and +1.7 GB for the NULL columns, a 360 MB grid for the lists, a 60 MB CSV.
"""
from __future__ import annotations

import io
import json
import tracemalloc

import duckdb
import pandas as pd
import pytest

from analytics.sandbox.rendered import row_costs
from analytics.settings import Settings
from app import ids
from app.logic import sql as logic
from app.server import create_app
from tests.app.dispatching import request_body

NULL_COLUMNS = "SELECT " + ", ".join(f"NULL AS n{i}" for i in range(1500)) + " FROM range(10000)"
NULL_LISTS = "SELECT l AS a, l AS b FROM (SELECT list(NULL) AS l FROM range(30000000))"
NULL_CSV = "SELECT " + ", ".join(f"NULL AS n{i}" for i in range(300)) + " FROM range(200000)"
WEB_PEAK = 160 << 20   # what this process may allocate for one answer (it was gigabytes)


@pytest.fixture(scope="module")
def app(app_store):
    app = create_app(Settings(store=app_store))
    assert app.server.test_client().get("/sql").status_code == 200  # the first request registers the callbacks
    return app


def _post(app, output, values: dict, changed: str) -> tuple[dict, int]:
    """The callback's answer through Dash's dispatch, and the peak bytes this process allocated meanwhile."""
    client = app.server.test_client()
    tracemalloc.start()
    try:
        r = client.post("/_dash-update-component", json=request_body(app, output, values, changed))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.json["response"], peak


def _grid(app, sql: str) -> tuple[list[dict], str, int, int]:
    response, peak = _post(app, ids.SQL_TABLE, {ids.SQL_EDITOR: sql, ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")
    rows = response[ids.SQL_TABLE]["rowData"]
    return rows, json.dumps(response[ids.SQL_MSG]), len(json.dumps(response)), peak


def _csv(app, sql: str) -> tuple[str, int]:
    response, peak = _post(app, ids.SQL_DOWNLOAD, {ids.SQL_CSV: 1, ids.SQL_LAST: sql}, f"{ids.SQL_CSV}.n_clicks")
    return response[ids.SQL_DOWNLOAD]["data"]["content"], peak


def test_null_columns_are_cut_by_cells_and_rendered_bytes(app):
    rows, msg, answer, peak = _grid(app, NULL_COLUMNS)
    assert 0 < len(rows) < 10_000 and len(rows) * 1500 <= logic.GRID_MAX_CELLS
    assert len(rows[0]) == 1500 and set(rows[0].values()) == {None}
    assert "Size limit" in msg
    assert answer < 1.2 * logic.GRID_MAX_BYTES   # was 184 MB
    assert peak < WEB_PEAK


def test_lists_of_nulls_count_their_elements(app):
    rows, msg, answer, peak = _grid(app, NULL_LISTS)   # one row of two 30 M-element lists: nothing fits
    assert rows == [] and "Size limit" in msg
    assert answer < 1 << 20 and peak < WEB_PEAK      # was a 360 MB answer, +1.1 GB
    rows, msg, _, _ = _grid(app, "SELECT l AS a, l AS b FROM (SELECT list(NULL) AS l FROM range(1000))")
    assert len(rows) == 1 and json.loads(rows[0]["c0"]) == [None] * 1000   # a list that fits is shown whole


def test_csv_of_null_columns_stays_under_the_download_cap(app):
    content, peak = _csv(app, NULL_CSV)
    frame = pd.read_csv(io.StringIO(content))
    assert list(frame.columns) == [f"n{i}" for i in range(300)]
    assert 0 < len(frame) < 200_000 and len(frame) * 300 <= logic.DOWNLOAD_MAX_CELLS
    assert len(content) < logic.DOWNLOAD_MAX_BYTES and peak < WEB_PEAK + logic.DOWNLOAD_MAX_BYTES  # was 60 MB past


def test_rendered_cost_bounds_the_grid_json_of_every_row():
    """The child's estimate against an independent reference: the JSON of each grid row as the web builds it."""
    sql = r"""SELECT range AS i, range / 7 AS x, range % 3 = 0 AS b, 'w"\' || chr(1) || repeat('é', range % 5) AS s,
                     CASE WHEN range % 2 = 0 THEN NULL ELSE range END AS maybe, NULL AS nothing,
                     [range, NULL, 3] AS ints, ['a', NULL, 'q"x'] AS words, {'k': range, 'v': 'z'} AS rec,
                     map([1, 2], ['p', NULL]) AS m, DATE '2024-01-01' + range::INT AS d, now() AS t,
                     (range / 3)::DECIMAL(12, 3) AS dec, 'ab'::BLOB AS bin, [[1, 2], [], NULL] AS nested,
                     INTERVAL 1 DAY * range AS iv
              FROM range(300)"""
    batch = duckdb.connect().sql(sql).to_arrow_table().combine_chunks().to_batches()[0]
    costs = row_costs(batch, 1 << 20)
    _, records = logic.grid_data(batch.to_pandas())
    actual = [len(json.dumps(r).encode()) for r in records]
    assert all(a <= c for a, c in zip(actual, costs)), [(a, c) for a, c in zip(actual, costs) if a > c][:3]
    assert sum(costs) < 3 * sum(actual)   # an estimate, not a multiple of the truth


def test_a_column_the_grid_cannot_show_is_a_message(app):
    rows, msg, _, _ = _grid(app, "SELECT union_value(k := 1) AS u")   # pandas has no UNION column
    assert rows == [] and "UNION" in msg and "VARCHAR" in msg
