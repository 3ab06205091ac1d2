"""The quick commands start without importing torch (2-3 s of the ~3 s they took before).

A functional check, not a timing: each command runs in a fresh interpreter, which then reports
whether torch (and, for the commands that need no store, DuckDB and pandas) were imported.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import contextlib, io, json, sys
from app.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
print(json.dumps({"rc": rc, "out": out.getvalue(), "loaded": sorted(m for m in ("torch", "duckdb", "pandas", "flask")
                                                                    if m in sys.modules)}))
"""


def _run(args: list[str], store: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "RNNVIS_STORE": str(store), "HOME": str(store)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args,light", [(["--help"], True), (["presets"], True), (["sql", "--help"], False),
                                        (["users", "--help"], False), (["models"], False),
                                        (["sql", "SELECT 42 AS answer"], False)])
def test_quick_commands_do_not_import_torch(tmp_path, args, light):
    res = _run(args, tmp_path / "store")
    assert res["rc"] == 0, res
    assert "torch" not in res["loaded"], res
    if light:                                   # no store needed: no DuckDB, pandas or Flask either
        assert res["loaded"] == [], res


def test_help_lists_every_command_and_errors_are_still_messages(tmp_path):
    res = _run(["--help"], tmp_path / "store")
    for command in ("presets", "train", "analyze", "sql", "models", "jobs", "worker", "users"):
        assert command in res["out"]
    assert "--sandbox" in _run(["sql", "--help"], tmp_path / "store")["out"]
    assert "set-role" in _run(["users", "--help"], tmp_path / "store")["out"]
    res = _run(["delete", "../bad id"], tmp_path / "store")          # a user error: a message and status 2
    assert res["rc"] == 2, res
