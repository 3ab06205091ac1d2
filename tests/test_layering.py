"""Imports go one way: app/ and workers/ -> analytics/ -> models/ (and app/ -> workers/ to submit jobs).

Checked on the source (every import statement, top-level or inside a function), so a lazy import that
breaks the direction fails here too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What each package may import of ours.
ALLOWED = {"models": {"models"}, "analytics": {"analytics", "models"},
           "workers": {"workers", "analytics", "models"}, "app": {"app", "workers", "analytics", "models"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_go_one_way(package):
    wrong = {str(p.relative_to(REPO)): sorted(_imports(p) - ALLOWED[package])
             for p in sorted((REPO / package).rglob("*.py"))}
    assert not {k: v for k, v in wrong.items() if v}


def test_analytics_holds_no_job_orchestration():
    assert not (REPO / "analytics" / "jobs.py").exists()
    for p in (REPO / "analytics").rglob("*.py"):
        assert "JobRecord" not in p.read_text(encoding="utf-8"), p
