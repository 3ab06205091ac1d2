"""docs/deployment.md's settings table lists every RNNVIS_* environment variable the code reads.

The reads are found in the source, not listed by hand: a string "RNNVIS_X" passed to an environment lookup
(``os.environ.get``, ``os.getenv``, ``env.get``, ``environ[...]``), a bare name passed to a lookup inside a
``from_env`` (where ``get("PORT")`` means RNNVIS_PORT), and ``${RNNVIS_X...}`` in docker-compose.yml.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analytics", "app", "models", "workers")
NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _lookup_arg(call: ast.Call) -> str | None:
    return call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) and isinstance(
        call.args[0].value, str) else None


def _named_read(node: ast.AST) -> str | None:
    """"RNNVIS_X" if node reads it from the environment: env.get / os.getenv (not app.config) or environ[...]."""
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
        arg = _lookup_arg(node)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        receiver = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
        # app.config["RNNVIS_SETTINGS"] is a Flask config key, no setting
        ok = name in ("get", "getenv", "pop", "setdefault") and not receiver.endswith("config")
        return arg if ok and arg and arg.startswith("RNNVIS_") else None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and "environ" in ast.unparse(node.value):
        return node.slice.value if str(node.slice.value).startswith("RNNVIS_") else None
    return None


def _from_env_reads(fn: ast.FunctionDef) -> set[str]:
    """Inside a from_env, get("PORT") / num("HEARTBEAT_S", ...) read RNNVIS_PORT / RNNVIS_HEARTBEAT_S."""
    args = (_lookup_arg(c) for c in ast.walk(fn) if isinstance(c, ast.Call))
    return {a if a.startswith("RNNVIS_") else f"RNNVIS_{a}" for a in args if a and NAME.match(a)}


def _env_reads(tree: ast.AST) -> set[str]:
    found = {_named_read(node) for node in ast.walk(tree)} - {None}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == "from_env":
            found |= _from_env_reads(fn)
    return found


def code_settings() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= _env_reads(ast.parse(path.read_text(encoding="utf-8")))
    found |= set(re.findall(r"\$\{(RNNVIS_[A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text(encoding="utf-8")))
    return found


def table_settings() -> set[str]:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text[text.index("## Settings (environment)"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `RNNVIS_")]
    return {name for cell in rows for name in re.findall(r"RNNVIS_[A-Z0-9_]+", cell)}


def test_the_settings_table_lists_every_setting_the_code_reads():
    code = code_settings()
    assert {"RNNVIS_PORT", "RNNVIS_BROKER_PREFIX", "RNNVIS_MAX_UPLOAD_MB", "RNNVIS_DATA"} <= code  # the finder works
    missing = code - table_settings()
    assert not missing, f"add these to the settings table in docs/deployment.md: {sorted(missing)}"
    stale = table_settings() - code
    assert not stale, f"the settings table lists variables nothing reads: {sorted(stale)}"


def test_the_finder_sees_each_kind_of_read():
    tree = ast.parse("import os\nos.environ.get('RNNVIS_A')\nos.getenv('RNNVIS_B')\nx = os.environ['RNNVIS_C']\n"
                     "def from_env(env):\n    get = env.get\n    get('DD')\n    num('E_F', 1)\n"
                     "KEY = 'RNNVIS_NOT_ENV'\napp.config.get('RNNVIS_SETTINGS')\n")
    assert _env_reads(tree) == {"RNNVIS_A", "RNNVIS_B", "RNNVIS_C", "RNNVIS_DD", "RNNVIS_E_F"}
