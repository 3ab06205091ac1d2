"""SQL console: example queries, the schema browser, running a query for the grid, downloads, saved queries.

Every query goes through :func:`analytics.sandbox.run_sandboxed` (the same
function as ``rnnvis sql --sandbox``), as the signed-in user (two at once per
user). Results are capped at :data:`GRID_MAX_ROWS` rows, :data:`GRID_MAX_CELLS`
cells and :data:`GRID_MAX_BYTES` bytes for the grid (sorted and paged in the
browser) and :data:`DOWNLOAD_MAX_ROWS` rows, :data:`DOWNLOAD_MAX_CELLS` cells and
:data:`DOWNLOAD_MAX_BYTES` bytes for downloads, which re-run the last query (the
grid's rows are never kept in a ``dcc.Store``). Bytes are those of the rendered
result (a NULL cell costs its text), counted in the query's process before the rows
reach this one (:mod:`analytics.sandbox.rendered`), so the frame, the grid's JSON
and the CSV built here are bounded by them.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dash import dcc, html

from analytics import saved_queries, store
from analytics.sandbox import SandboxError, SandboxResult, run_sandboxed
from analytics.schema import VIEWS
from app.hosted import auth
from app.logic import audit
from app.logic import notes as team_notes
from app.logic.common import alert
from app.logic.csv_export import send_csv

GRID_MAX_ROWS = 10_000
DOWNLOAD_MAX_ROWS = 200_000
GRID_MAX_CELLS = 300_000
DOWNLOAD_MAX_CELLS = 4_000_000
GRID_MAX_BYTES = 8 << 20        # of the rendered rows (about the grid's JSON)
DOWNLOAD_MAX_BYTES = 32 << 20
TIMEOUT_S = 10.0
MEMORY_LIMIT = "1GB"

#: (title, SQL): shown in the examples menu; each runs on any store (empty results on an empty one).
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Models and their scores", """\
SELECT model_id, task, cell, layers, hidden_size, corpus,
       round(test_perplexity, 1) AS test_ppl, round(test_accuracy, 3) AS test_acc
FROM models
ORDER BY model_id"""),
    ("The ten units that respond most to 'he' in layer 1", """\
-- in the first model with at least two layers (change model_id, word, layer or state)
SELECT model_id, layer, state, unit, round(mean, 4) AS mean_response, round(std, 4) AS std, n
FROM word_responses
WHERE model_id = (SELECT min(model_id) FROM models WHERE layers >= 2)
  AND layer = 1 AND state = 'h' AND word = 'he'
ORDER BY mean DESC
LIMIT 10"""),
    ("Words whose response differs most between two models", """\
-- response strength of a word = mean |s(w)_u| over the units of layer 0 (h);
-- compares the first two models by id (replace a and b with the ids you want).
-- Ranked by z = difference / its standard error (from each unit's std and the word's
-- count n), not by the raw difference: a word seen a few times has a noisy mean and
-- would top a raw ranking by chance. Words seen fewer than 5 times in either are left out.
WITH pair AS (
  SELECT min(model_id) AS a, max(model_id) AS b
  FROM (SELECT model_id FROM models ORDER BY model_id LIMIT 2)
), strength AS (
  SELECT r.model_id, r.word, avg(abs(r.mean)) AS strength, max(r.n) AS n,
         sqrt(avg(r.std * r.std) / max(r.n) / count(*)) AS se
  FROM word_responses r, pair
  WHERE r.model_id IN (pair.a, pair.b) AND r.layer = 0 AND r.state = 'h'
  GROUP BY r.model_id, r.word
), diff AS (
  SELECT sa.word, sa.strength AS strength_a, sb.strength AS strength_b, sb.strength - sa.strength AS difference,
         sa.n AS n_a, sb.n AS n_b, (sb.strength - sa.strength) / nullif(sqrt(sa.se ^ 2 + sb.se ^ 2), 0) AS z
  FROM pair
  JOIN strength sa ON sa.model_id = pair.a
  JOIN strength sb ON sb.model_id = pair.b AND sb.word = sa.word
  WHERE sa.n >= 5 AND sb.n >= 5
)
SELECT word, round(strength_a, 4) AS strength_a, round(strength_b, 4) AS strength_b,
       round(difference, 4) AS difference, n_a, n_b, round(z, 1) AS z
FROM diff
ORDER BY abs(z) DESC NULLS LAST
LIMIT 20"""),
    ("Learning curves (validation)", """\
SELECT model_id, epoch, round(loss, 4) AS loss, round(perplexity, 1) AS perplexity, round(accuracy, 3) AS accuracy
FROM training_metrics
WHERE split = 'valid'
ORDER BY model_id, epoch"""),
    ("Co-cluster sizes for k = 5", """\
SELECT model_id, layer, state, axis, cluster, count(*) AS items
FROM coclusters
WHERE k = 5
GROUP BY ALL
ORDER BY model_id, layer, state, axis, cluster"""),
    ("Part-of-speech mix of each vocabulary", """\
SELECT model_id, coalesce(pos, '?') AS pos, count(*) AS words, sum(freq) AS tokens
FROM vocab
GROUP BY ALL
ORDER BY model_id, tokens DESC"""),
    ("Vanishing gradients: gradient norm 1, 5 and 20 steps back", """\
SELECT model_id, layer,
       max(grad_norm) FILTER (WHERE distance = 1) AS k1,
       max(grad_norm) FILTER (WHERE distance = 5) AS k5,
       max(grad_norm) FILTER (WHERE distance = 20) AS k20
FROM gradient_flow
GROUP BY ALL
ORDER BY model_id, layer"""),
    ("The most NOUN-selective units, with their top contexts", """\
-- unit_tags: a unit's response per gold POS tag (tagged corpora, e.g. Brown); z = Welch's statistic
-- against every other token. unit_contexts + corpus_tokens: the words where the unit's value is highest.
WITH best AS (
  SELECT model_id, layer, state, unit, round(z, 1) AS z
  FROM unit_tags WHERE tag = 'NOUN' ORDER BY z DESC LIMIT 5
)
SELECT b.model_id, b.layer, b.state, b.unit, b.z, s.description,
       string_agg(c.word, ' ' ORDER BY u.rank) AS top_words_in_context
FROM best b
JOIN unit_summaries s USING (model_id, layer, state, unit)
JOIN unit_contexts u USING (model_id, layer, state, unit)
JOIN corpus_tokens c ON c.model_id = u.model_id AND c.position = u.position
WHERE u.kind = 'h_top' AND u.rank <= 10
GROUP BY ALL
ORDER BY b.z DESC"""),
    ("Evaluated sentences and who entered them", """\
SELECT sentence_id, model_id, text, prediction, round(probability, 3) AS probability, created_by, created_at
FROM sentences
ORDER BY created_at DESC
LIMIT 50"""),
    ("Jobs per user and status", """\
SELECT submitted_by, kind, status, count(*) AS jobs
FROM jobs
GROUP BY ALL
ORDER BY submitted_by, kind, status"""),
)

DEFAULT_SQL = EXAMPLES[0][1]


def example_options() -> list[dict[str, Any]]:
    return [{"label": title, "value": i} for i, (title, _) in enumerate(EXAMPLES)]


def example_sql(index: Any) -> str | None:
    try:
        return EXAMPLES[int(index)][1]
    except (TypeError, ValueError, IndexError):
        return None


def schema_browser() -> html.Div:
    """Every view with its one-line description and columns (name, type, description)."""
    items = []
    for v in VIEWS.values():
        rows = [html.Tr([html.Td(html.Code(c.name)), html.Td(c.type, className="muted"), html.Td(c.description)])
                for c in v.columns]
        items.append(html.Details([
            html.Summary([html.Code(v.name), html.Span(f" — {v.description}", className="muted small")]),
            html.P(f"One row per {v.grain}.", className="muted small"),
            html.Table(html.Tbody(rows), className="table schema-table"),
        ], className="schema-view"))
    return html.Div(items, className="schema-browser")


# --------------------------------------------------------------------------- running


def _cell(value: Any) -> Any:
    """A value the grid can show: numbers, strings, booleans or None."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
        if isinstance(value, (bool, int, float, str)) or value is None:
            return _cell(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _float32_shortest(values: pd.Series) -> list[float | None]:
    """A float32 column as the Python floats its shortest decimal text denotes.

    ``round(x, 4)`` on a FLOAT (float32) column returns float32 0.1227, which is the double
    0.12269999831914902: shown as is, every rounded value carries that noise. numpy prints a float32 with the
    fewest digits that read back as the same float32 (``0.1227``), which is what the user asked for; the CSV
    download (pandas ``to_csv``) writes the same text already.
    """
    return [None if not np.isfinite(v) else float(str(v)) for v in values.to_numpy(np.float32)]


def grid_data(frame: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """(column definitions, rows) for the AG Grid; the fields are c0, c1, ... (names may repeat or be odd).

    Numeric columns are right-aligned and sort as numbers; a text cell cut at the column's width shows its
    whole value on hover.  Float32 columns show the shortest decimal of each value
    (:func:`_float32_shortest`), not its double expansion.
    """
    columns = []
    for i, (name, dtype) in enumerate(frame.dtypes.items()):
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        col = {"headerName": str(name), "field": f"c{i}", "headerTooltip": str(name)}
        col.update({"type": "numericColumn"} if numeric else {"tooltipField": f"c{i}"})
        columns.append(col)
    f32 = {i: _float32_shortest(frame.iloc[:, i]) for i, dtype in enumerate(frame.dtypes) if dtype == np.float32}
    records = [{f"c{i}": (f32[i][r] if i in f32 else _cell(v)) for i, v in enumerate(row)}
               for r, row in enumerate(frame.itertuples(index=False, name=None))]
    return columns, records


def run(root: str | Path, sql: str | None, *, max_rows: int = GRID_MAX_ROWS, max_bytes: int = GRID_MAX_BYTES,
        max_cells: int = GRID_MAX_CELLS, user: str | None = None) -> SandboxResult:
    """Run ``sql`` in the sandbox as ``user`` (SandboxError with a message when refused, stopped, busy or failed).

    The signed-in user's role decides the admin-only tables (``audit``): an admin's query that names one gets
    it; anyone else's is refused by the sandbox's statement check, the table being absent besides. Every signed-in
    role's query that names ``notes`` gets the team's notes."""
    me = auth.current_user()
    tables = {}
    if me is not None and me.can("admin") and "audit" in (sql or "").lower():
        tables["audit"] = audit.sql_table(root)
    if me is not None and "notes" in (sql or "").lower():    # the team's notes: every role
        tables["notes"] = team_notes.sql_table(root)
    return run_sandboxed(root, sql or "", timeout_s=TIMEOUT_S, max_rows=max_rows, max_bytes=max_bytes,
                         max_cells=max_cells, memory_limit=MEMORY_LIMIT, user=user, tables=tables)


def run_for_grid(root: str | Path, sql: str | None,
                 user: str | None = None) -> tuple[list[dict], list[dict], Any, str | None]:
    """(columns, records, message, sql to remember for downloads or None)."""
    try:
        res = run(root, sql, user=user)
    except SandboxError as e:
        kind = "danger" if e.kind in ("refused",) else "warning"
        return [], [], alert(str(e), kind=kind), None
    columns, records = grid_data(res.frame)
    note = html.Div(res.message, className="alert alert-warning" if res.truncated else "muted small",
                    role="status")
    return columns, records, note, sql


def download(root: str | Path, sql: str | None, fmt: str, user: str | None = None) -> dict | None:
    """The dcc.Download payload of the query's result as CSV or Parquet (at most DOWNLOAD_MAX_ROWS rows,
    DOWNLOAD_MAX_CELLS cells and DOWNLOAD_MAX_BYTES bytes rendered)."""
    if not sql:
        return None
    res = run(root, sql, max_rows=DOWNLOAD_MAX_ROWS, max_bytes=DOWNLOAD_MAX_BYTES, max_cells=DOWNLOAD_MAX_CELLS,
              user=user)
    if fmt == "parquet":
        data = store.parquet_bytes(res.frame)
        return dcc.send_bytes(data, "rnnvis-query.parquet")
    return send_csv(res.frame, "rnnvis-query.csv")


# --------------------------------------------------------------------------- saved queries


def saved_options(root: str | Path, user: str) -> list[dict[str, str]]:
    return [{"label": q["name"], "value": q["name"]} for q in saved_queries.list_queries(root, user)]


def saved_sql(root: str | Path, user: str, name: str | None) -> str | None:
    for q in saved_queries.list_queries(root, user):
        if q["name"] == name:
            return q["sql"]
    return None


def save(root: str | Path, user: str, name: str | None, sql: str | None) -> tuple[list[dict], Any]:
    """(options, message) after saving."""
    try:
        saved_queries.save_query(root, user, name or "", sql or "")
    except saved_queries.SavedQueryError as e:
        return saved_options(root, user), alert(str(e))
    return saved_options(root, user), html.Span(f"saved “{(name or '').strip()}”", className="muted small")


def delete(root: str | Path, user: str, name: str | None) -> tuple[list[dict], Any]:
    if not name:
        return saved_options(root, user), alert("Pick a saved query to delete.", kind="info")
    saved_queries.delete_query(root, user, name)
    return saved_options(root, user), html.Span(f"deleted “{name}”", className="muted small")


def names(options: Sequence[dict]) -> list[str]:
    return [o["value"] for o in options]
