"""The built wheel holds what an install outside this checkout needs: the dashboard's assets (style.css ...)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "analytics", "models", "workers")


def _build_wheel(tmp: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(out), str(src)], check=True, cwd=tmp, timeout=300)
    (wheel,) = out.glob("rnnvis-*.whl")
    return wheel


def test_the_wheel_installs_the_dashboard_assets(tmp_path):
    wheel = _build_wheel(tmp_path)
    assets = sorted(p.name for p in (ROOT / "app" / "assets").iterdir() if p.is_file())
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "style.css" in assets and {f"app/assets/{a}" for a in assets} <= names
    pages = {f"app/hosted/templates/rnnvis/{p.name}" for p in (ROOT / "app/hosted/templates/rnnvis").glob("*.html")}
    assert "app/hosted/templates/rnnvis/login.html" in pages and pages <= names      # hosted mode's sign-in pages
    migrations = {str(p.relative_to(ROOT)) for p in (ROOT / "analytics/metadb/migrations").rglob("*.py")}
    assert "analytics/metadb/migrations/versions/0001_initial.py" in migrations and migrations <= names
    # installed into a fresh environment (no dependencies needed to find files), away from this checkout
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, cwd=tmp_path, timeout=300)
    found = subprocess.run([str(python), "-c", "import importlib.util, pathlib; "
                            "spec = importlib.util.find_spec('app'); "
                            "d = pathlib.Path(next(iter(spec.submodule_search_locations))) / 'assets'; "
                            "print(d); print(*sorted(p.name for p in d.iterdir()))"],
                           check=True, cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert Path(found[0]).is_relative_to(venv) and found[1].split() == assets
