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


def _modules() -> dict[str, Path]:
    """Every module of ours by dotted name (a package by its own name)."""
    mods = {}
    for package in ALLOWED:
        for p in (REPO / package).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _owner(name: str, mods: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) lives in."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _edges(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Module -> the modules it imports (anywhere in it); and every (importer, module, _name) imported."""
    edges, private = {}, []
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                deps.update(o for a in node.names if (o := _owner(a.name, mods)))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    target = _owner(f"{node.module}.{a.name}", mods) or _owner(node.module, mods)
                    if target:
                        deps.add(target)
                    if a.name.startswith("_") and not a.name.startswith("__") and target and target != name:
                        private.append((name, target, a.name))
        edges[name] = deps - {name}
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]; counter[0] += 1; stack.append(root); on.add(root)  # noqa: E702
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while (x := stack.pop()) != v:
                        on.discard(x); comp.append(x)  # noqa: E702
                    on.discard(v)
                    if comp:
                        found.append(sorted([v, *comp]))
            elif w not in index:
                index[w] = low[w] = counter[0]; counter[0] += 1; stack.append(w); on.add(w)  # noqa: E702
                work.append((w, iter(sorted(edges.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    """Not even behind a function-level import: a cycle hidden that way still ties two modules into one."""
    edges, _ = _edges(_modules())
    assert _cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_imported_across_modules():
    """A family of modules is a package with a public ``__init__``; ``_names`` stay in their module."""
    _, private = _edges(_modules())
    assert private == []
