"""The SQL sandbox against hostile queries: each is refused or bounded, and the store never changes.

Runs on a private copy of the tiny store that also holds a users file and saved queries (which must stay
unreadable). Every case re-hashes every file of the store; the limits are small so the suite stays fast.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analytics import store
from analytics.sandbox import DEFAULT_MAX_BYTES, SandboxError, run_sandboxed

#: The limit of the queries that must stop on time (runaways). Every other query gets a generous one:
#: on a loaded 2-core machine even a refused query's process can take over a second to answer.
TIMEOUT_S = 1.0
GENEROUS_S = 30.0
MEMORY = "256MB"


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".staging"]  # the shared engine's commit lock lives there
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def box(tiny_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    (root / "users.json").write_text('{"users": {"eve": {"role": "admin", "hash": "SECRET-HASH"}}}')
    (root / "saved_queries").mkdir()
    (root / "saved_queries" / "eve.json").write_text('{"queries": [{"name": "x", "sql": "SECRET-SQL"}]}')
    before = _digest(root)
    yield root, before
    assert _digest(root) == before


def query_running(root: Path) -> bool:
    """True while a console query of this store holds one of the machine's slots: the sign it has started."""
    from analytics.sandbox.slots import held_slots
    return held_slots(root) > 0


def _wait_until(pred, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _run(root: Path, sql: str, **kw):
    kw = {"timeout_s": GENEROUS_S, "max_rows": 100, "memory_limit": MEMORY, **kw}
    return run_sandboxed(root, sql, **kw)


HOSTILE_REFUSED = [
    # writes, DDL, configuration, extensions, other databases
    "COPY models TO '/tmp/rnnvis-sandbox-copy.csv'",
    "COPY (SELECT 1) TO '{store}/models/evil.csv'",
    "COPY (SELECT * FROM models) TO '{store}/models/model_id=tiny-lstm/models.evil.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '/tmp/rnnvis-sandbox-export'",
    "ATTACH '/tmp/rnnvis-sandbox.duckdb' AS x",
    "ATTACH ':memory:' AS m",
    "DETACH memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SET memory_limit = '100GB'",
    "RESET threads",
    "PRAGMA memory_limit='100GB'",
    "PRAGMA enable_profiling",
    "USE memory.information_schema",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW models AS SELECT 1 AS x",
    "CREATE TEMP VIEW v AS SELECT * FROM read_text('/etc/passwd')",
    "CREATE MACRO f(x) AS x + 1",
    "CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "DROP VIEW models",
    "INSERT INTO models (model_id) VALUES ('x')",
    "UPDATE models SET name = 'x'",
    "DELETE FROM models",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "EXPLAIN ANALYZE SELECT 1",
    "PIVOT models ON cell",
    # files and URLs, directly or hidden in subqueries, lateral joins, lambdas
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT content FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM read_parquet('{store}/models/*/*.parquet')",
    "SELECT content FROM read_text('{store}/users.json')",
    "SELECT * FROM read_json('{store}/saved_queries/eve.json')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM 's3://bucket/x.parquet'",
    "FROM '/etc/passwd'",
    "DESCRIBE '/etc/passwd'",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM parquet_metadata('{store}/models/model_id=tiny-lstm/*.parquet')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT getenv('HOME')",
    "SELECT list_transform([1], x -> getenv('HOME'))",
    "SELECT * FROM models WHERE model_id IN (SELECT * FROM read_csv('/etc/passwd'))",
    "SELECT (SELECT content FROM read_text('/etc/hostname'))",
    "SELECT * FROM range(3) t(x), LATERAL (SELECT * FROM read_text('/etc/hostname'))",
    "WITH \"/etc/passwd\" AS (SELECT 1) SELECT * FROM \"/etc/passwd\"",
    "SELECT * FROM temp.main.x",
    "SELECT * FROM system.main.duckdb_settings()",     # the original, with the paths
    "SELECT * FROM temp.main.duckdb_settings()",
    # several statements, semicolons and comments
    "SELECT 1; DROP VIEW models",
    "SELECT 1; COPY models TO '/tmp/rnnvis-sandbox-2.csv'",
    "SELECT 1 /* ; */ ; DELETE FROM models -- ;",
    "-- just a comment\nCOPY models TO '/tmp/rnnvis-sandbox-3.csv'",
    "/* SELECT */ DROP VIEW vocab",
    "SELECT $1",
    "",
    "-- only a comment",
]


@pytest.mark.parametrize("sql", HOSTILE_REFUSED)
def test_hostile_query_is_refused(box, sql):
    root, before = box
    with pytest.raises(SandboxError) as err:
        _run(root, sql.format(store=root))
    assert err.value.kind in ("refused", "error")
    assert str(err.value) and "Traceback" not in str(err.value)
    assert _digest(root) == before
    assert not Path("/tmp/rnnvis-sandbox-copy.csv").exists()


HOSTILE_BOUNDED = [  # (sql, what stops it)
    ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t", "timeout"),
    ("SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b", "timeout"),
    ("SELECT a.range, b.range FROM range(100000) a, range(100000) b ORDER BY random()", ("memory", "timeout")),
    ("SELECT string_agg(x::VARCHAR, ',') FROM range(300000000) t(x)", ("memory", "timeout")),
    ("SELECT list(range) FROM range(200000000)", ("memory", "timeout")),
]


@pytest.mark.parametrize("sql,stop", HOSTILE_BOUNDED)
def test_runaway_query_is_stopped_with_a_message(box, sql, stop):
    root, before = box
    with pytest.raises(SandboxError) as err:
        _run(root, sql, timeout_s=TIMEOUT_S)
    assert err.value.kind in ((stop,) if isinstance(stop, str) else stop)
    assert ("Time limit" in str(err.value)) or ("Memory limit" in str(err.value))
    assert _digest(root) == before


@pytest.mark.parametrize("sql", [
    "SELECT * FROM range(1000000000)",
    "SELECT * FROM word_responses a, word_responses b",
    "SELECT * FROM vocab, range(100000)",
])
def test_huge_results_are_cut_at_the_row_cap(box, sql):
    root, _ = box
    res = _run(root, sql, max_rows=50)
    assert res.truncated and len(res.frame) == 50
    assert "Row limit" in res.message


@pytest.mark.parametrize("sql", [
    "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration')",
    "SUMMARIZE models",
    "DESCRIBE word_responses",
    "SHOW TABLES",
    "SELECT table_name FROM information_schema.tables ORDER BY 1",
    "FROM models SELECT model_id",
    "SELECT * FROM memory.main.models",
])
def test_read_only_catalog_queries_are_allowed(box, sql):
    root, before = box
    res = _run(root, sql)
    assert len(res.frame) > 0 and not res.truncated
    assert _digest(root) == before


def test_the_connection_is_locked_down_even_without_the_statement_check(box):
    """Layer 2 alone: what the statement check would refuse, the connection refuses or cannot reach."""
    root, _ = box
    settings = dict(_run(root, "SELECT name, value FROM duckdb_settings()").frame.values.tolist())
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
    assert settings["autoload_known_extensions"] == "false" and settings["autoinstall_known_extensions"] == "false"
    con = store.sandbox_connection(root, memory_limit=MEMORY, threads=1)
    try:
        for sql in ("SET enable_external_access = true", "SET lock_configuration = false",
                    "SET memory_limit = '64GB'", "SET allowed_directories = ['/']", "LOAD httpfs"):
            with pytest.raises(store.QueryError):
                store.fetch_limited(con, sql, max_rows=1, timeout_s=5)
        for sql in ("SELECT * FROM read_text('/etc/passwd')", f"SELECT * FROM read_text('{root}/users.json')",
                    f"SELECT * FROM read_text('{root}/models/../users.json')",
                    f"SELECT * FROM read_blob('{root}/checkpoints/tiny-lstm.pt')"):
            with pytest.raises(store.QueryRefused):
                store.fetch_limited(con, sql, max_rows=1, timeout_s=5)
    finally:
        con.close()


def test_normal_queries_still_work_after_the_hostile_ones(box):
    root, before = box
    res = _run(root, "SELECT model_id, cell FROM models ORDER BY model_id")
    assert res.frame.to_dict("records") == [{"model_id": "tiny-gru", "cell": "gru"},
                                            {"model_id": "tiny-lstm", "cell": "lstm"}]
    assert not res.truncated
    n = _run(root, "SELECT count(*) AS n FROM word_responses WHERE model_id = 'tiny-lstm'").frame["n"][0]
    assert n > 0
    assert _digest(root) == before


def test_a_timed_out_query_does_not_hold_up_others(box):
    root, _ = box
    errors: list[BaseException] = []

    def slow():
        try:
            _run(root, "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
                 timeout_s=8)  # room for the other query to be answered first on a loaded machine
        except SandboxError as e:
            errors.append(e)

    th = threading.Thread(target=slow)
    th.start()
    _wait_until(lambda: query_running(root), "the runaway query to start")
    assert len(_run(root, "SELECT * FROM models").frame) == 2
    assert th.is_alive() and query_running(root)  # answered while the runaway query still runs
    th.join(60)
    assert errors and errors[0].kind == "timeout"


# --------------------------------------------------------------------------- limits that hold whatever a query calls


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


@pytest.mark.parametrize("sql,kw", [
    # DuckDB's memory_limit does not count a list built by one function: 480 MB here, under a 100 MB limit
    ("SELECT len(range(60000000)) AS n", {}),
    # the queries of the hostile test (5 GB each in one web worker), stopped at a 300 MB address-space budget
    ("SELECT len(range(200000000)) AS n", {"address_space": "300MB"}),
    ("SELECT len(list_sort(range(150000000))) AS n", {"address_space": "300MB"}),
])
def test_list_functions_cannot_pass_the_memory_limit(box, sql, kw):
    root, before = box
    peak = _peak_rss_mb()
    with pytest.raises(SandboxError) as err:
        _run(root, sql, memory_limit="100MB", timeout_s=5, **kw)
    assert err.value.kind == "memory" and "Memory limit" in str(err.value)
    assert _peak_rss_mb() - peak < 150  # none of it happened in this process
    assert _digest(root) == before


def test_a_query_duckdb_cannot_interrupt_is_killed_at_the_deadline(box):
    root, _ = box
    # list_distinct over one 3M-element list runs ~7 s in one call that ignores DuckDB's interrupt: had it
    # not been killed, it would have answered n = 3000000
    with pytest.raises(SandboxError) as err:
        _run(root, "SELECT len(list_distinct(range(3000000))) AS n", timeout_s=0.5)
    assert err.value.kind in ("timeout", "memory")
    assert len(_run(root, "SELECT * FROM models").frame) == 2


def test_results_are_capped_in_bytes_as_well_as_rows(box):
    root, _ = box
    res = _run(root, "SELECT repeat('x', 20000) AS s FROM range(10000)", max_rows=10_000)  # 200 MB in all
    assert res.truncated and res.cut == "bytes" and "Size limit" in res.message
    assert 0 < len(res.frame) < 10_000
    assert res.frame["s"].str.len().sum() <= DEFAULT_MAX_BYTES
    small = _run(root, "SELECT repeat('x', 1000) AS s FROM range(1000)", max_rows=10_000, max_bytes=100_000)
    assert small.cut == "bytes" and 50 <= len(small.frame) < 100
    rows = _run(root, "SELECT * FROM range(1000)", max_rows=10, max_bytes=100_000)
    assert rows.cut == "rows" and len(rows.frame) == 10
    exact = _run(root, "SELECT * FROM range(10)", max_rows=10)
    assert not exact.truncated and exact.cut is None and len(exact.frame) == 10


def test_a_timeout_while_rows_stream_is_a_message(box):
    root, _ = box
    # rows trickle out (1 in a million kept) until the time limit lands in the middle of the stream; all of them
    # (10,000 rows, ~300 kB rendered) stay far below every cap, so only the time limit can stop it, on any machine
    with pytest.raises(SandboxError) as err:
        _run(root, "SELECT i FROM range(10000000000) t(i) WHERE hash(i) % 1000000 = 0", max_rows=10_000_000,
             timeout_s=1.0)
    assert err.value.kind == "timeout" and "Time limit" in str(err.value)


def test_settings_views_and_errors_show_no_path_of_the_store_or_home(box):
    root, _ = box
    home = os.path.expanduser("~")
    texts = []
    for sql in ("SELECT name, value FROM duckdb_settings()", "SELECT sql FROM duckdb_views()",
                "SELECT * FROM information_schema.views", "SELECT * FROM duckdb_databases()"):
        frame = _run(root, sql, max_rows=10_000).frame
        texts.append(frame.astype(str).to_string())
    with pytest.raises(SandboxError) as err:
        _run(root, "SELECT * FROM read_text('/etc/passwd')")
    texts.append(str(err.value))
    for text in texts:
        assert str(root) not in text and str(root.resolve()) not in text
        assert home not in text
    settings = dict(_run(root, "SELECT name, value FROM duckdb_settings()", max_rows=10_000).frame.values.tolist())
    assert settings["allowed_directories"] == "(hidden)" and settings["enable_external_access"] == "false"


def _hold_slot(root: Path, user: str) -> subprocess.Popen:
    """A separate process that holds one query slot of ``user`` until its stdin closes."""
    code = ("import sys; from analytics.sandbox import slots as s\n"
            f"with s.query_slot({str(root)!r}, {user!r}, per_user=2, total=4):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_at_most_two_queries_per_user_and_four_in_all(box):
    root, _ = box
    kw = {"per_user": 2, "total": 4}
    eve = [_hold_slot(root, "eve"), _hold_slot(root, "eve")]    # two queries of eve run, in other processes
    try:
        with pytest.raises(SandboxError) as err:
            _run(root, "SELECT 1 AS x", user="eve", **kw)
        assert err.value.kind == "busy" and "already have 2" in str(err.value)
        assert _run(root, "SELECT 1 AS x", user="bob", **kw).frame["x"].tolist() == [1]
        others = [_hold_slot(root, "bob"), _hold_slot(root, "carl")]  # now 4 run on the machine
        try:
            with pytest.raises(SandboxError) as err:
                _run(root, "SELECT 1 AS x", user="dan", **kw)
            assert err.value.kind == "busy" and "try again" in str(err.value)
        finally:
            for p in others:
                p.kill()          # however a holder dies, its slot is free again
                p.wait()
        assert _run(root, "SELECT 1 AS x", user="dan", **kw).frame["x"].tolist() == [1]
    finally:
        for p in eve:
            p.stdin.close()
            p.wait()
    assert _run(root, "SELECT 1 AS x", user="eve", **kw).frame["x"].tolist() == [1]
