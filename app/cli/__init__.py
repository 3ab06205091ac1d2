"""The ``rnnvis`` command: :mod:`.main` (parser, local commands), :mod:`.jobs` (job commands),
:mod:`.hosted` (users, sandboxed SQL), :mod:`.common` (what they share)."""
from __future__ import annotations

from app.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
