"""Bounded, typed summaries of untrusted nested values, and the size cap of ``models.params``.

An uploaded checkpoint's ``train_config`` and ``metrics`` are claims, not instructions: :func:`summarize`
keeps scalars (booleans, integers, finite floats, strings cut at :data:`Limits.text`), lists cut at
:data:`Limits.items`, mappings with string keys cut at the same count, nothing deeper than
:data:`Limits.depth`, and at most :data:`Limits.nodes` values in all, visited once each, so a DAG of shared
lists 22 levels deep (2**22 paths) costs at most ``nodes`` steps. Anything else (tensors, bytes, objects)
becomes the name of its type. A string that names a file (an absolute or home path, a ``file:`` URL) keeps its
last component only (:func:`public_path`): nothing summarised is a path anyone reads, and no path of this
machine is shown.

:func:`capped_json` writes a mapping as JSON text of at most ``max_chars`` characters, summarising harder
until it fits (``models.params`` is read by every render of the Models page).

Hand-written: the bounds are this project's, and a JSON-schema library would still walk the whole DAG.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "summarize", "public_path", "capped_json", "MAX_PARAMS_CHARS", "CUT"]

#: The largest ``models.params`` text (characters).
MAX_PARAMS_CHARS = 32_768
#: What stands for the values a summary left out.
CUT = "..."
_PATH = re.compile(r"^(?:/|~|\\\\|[A-Za-z]:[\\/]|file:)")


@dataclass(frozen=True)
class Limits:
    depth: int = 4        # nesting levels kept below the top
    items: int = 50       # elements of a list / keys of a mapping
    text: int = 200       # characters of a string
    nodes: int = 2_000    # values visited in all


def public_path(text: str) -> str:
    """``text``, or its last path component if it names a file by an absolute/home path or a ``file:`` URL."""
    if not _PATH.match(text):
        return text
    last = re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    return last or "(a path)"


class _Walk:
    def __init__(self, limits: Limits):
        self.limits, self.left = limits, limits.nodes

    def value(self, v: Any, depth: int) -> Any:
        self.left -= 1
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v if abs(v) < 2**63 else float(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, str):
            return public_path(v[: self.limits.text] + (CUT if len(v) > self.limits.text else ""))
        if isinstance(v, (list, tuple, Mapping)):
            return self.container(v, depth)
        return f"({type(v).__name__})"

    def container(self, v: list | tuple | Mapping, depth: int) -> Any:
        if depth >= self.limits.depth or self.left <= 0:
            return CUT
        pairs = list(v.items()) if isinstance(v, Mapping) else list(enumerate(v))
        kept: list[tuple[Any, Any]] = []
        for k, item in pairs[: self.limits.items]:
            if self.left <= 0:
                break
            kept.append((k, self.value(item, depth + 1)))
        cut = len(kept) < len(pairs)
        if isinstance(v, Mapping):
            out = {str(k)[: self.limits.text]: item for k, item in kept}
            return {**out, CUT: len(pairs) - len(kept)} if cut else out
        return [item for _, item in kept] + ([CUT] if cut else [])


def summarize(value: Any, limits: Limits = Limits()) -> Any:
    """A JSON-safe copy of ``value`` within ``limits`` (see the module's docstring)."""
    return _Walk(limits).value(value, 0)


_TIGHTER = (Limits(), Limits(depth=3, items=20, text=100, nodes=500), Limits(depth=2, items=10, text=60, nodes=100))


def capped_json(params: Mapping[str, Any], max_chars: int = MAX_PARAMS_CHARS) -> str:
    """``params`` as JSON text of at most ``max_chars`` characters: summarised (:func:`summarize`), harder
    each time it is too long; at the end only its keys are kept."""
    for limits in _TIGHTER:
        text = json.dumps(summarize(params, Limits(limits.depth + 1, limits.items, limits.text, limits.nodes)))
        if len(text) <= max_chars:
            return text
    return json.dumps({str(k)[:60]: CUT for k in list(params)[:20]})[:max_chars]
