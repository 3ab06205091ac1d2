"""The types a callback input may declare, each with its bound, and the check of a value against one.

Every spec accepts ``None`` (Dash sends ``null`` for a property that is not set) and answers
:meth:`Spec.problem` with a short message, or None when the value fits. A check costs at most the size of
the value as posted (already bounded by the request body cap) and stops at the first problem; nested
values are walked to the declared depth only, so a check never recurses deeper than its spec.

Written here rather than with pydantic or jsonschema (neither is a dependency): the whole language is six
small types, and a hand-written check can promise the two things the guard needs, no recursion past the
declared depth and an early exit, which a general validator leaves to its configuration.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Spec", "Text", "Number", "Flag", "ListOf", "Record", "Json", "AnyOf", "describe"]


def describe(value: Any) -> str:
    """A value's JSON type, for messages (never the value itself: it may be huge)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"a string of {len(value):,} characters"
    if isinstance(value, list):
        return f"a list of {len(value):,} items"
    if isinstance(value, dict):
        return f"an object of {len(value):,} keys"
    return type(value).__name__


class Spec:
    """A declared type and bound of one callback input."""

    def problem(self, value: Any) -> str | None:
        """None when ``value`` fits the spec, else what is wrong with it."""
        if value is None:
            return None
        return self.check(value)

    def check(self, value: Any) -> str | None:  # value is not None
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most ``max_len`` characters (a callable: read when checked, e.g. an upload cap), matching
    ``pattern`` in full and among ``choices`` if given."""

    max_len: int | Callable[[], int]
    pattern: str | None = None
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a string, got {describe(value)}"
        most = self.max_len() if callable(self.max_len) else self.max_len
        if len(value) > most:
            return f"expected at most {most:,} characters, got {len(value):,}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(self.choices)}"
        if self.pattern and not re.fullmatch(self.pattern, value):
            return "not in the expected form"
        return None


@dataclass(frozen=True)
class Number(Spec):
    """A finite number within ``lo..hi`` (a whole one if ``integer``); booleans are not numbers."""

    lo: float
    hi: float
    integer: bool = False

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {describe(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "expected a finite number"
        if self.integer and not float(value).is_integer():
            return "expected a whole number"
        if not self.lo <= value <= self.hi:
            return f"expected a number from {self.lo:g} to {self.hi:g}"
        return None


@dataclass(frozen=True)
class Flag(Spec):
    """A boolean."""

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"expected a boolean, got {describe(value)}"


@dataclass(frozen=True)
class ListOf(Spec):
    """A list of at most ``max_len`` items, each fitting ``item``."""

    item: Spec
    max_len: int

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected a list, got {describe(value)}"
        if len(value) > self.max_len:
            return f"expected at most {self.max_len:,} items, got {len(value):,}"
        for i, v in enumerate(value):
            p = self.item.problem(v)
            if p:
                return f"item {i}: {p}"
        return None


@dataclass(frozen=True)
class Record(Spec):
    """An object whose keys are among ``fields`` (none required), each value fitting its spec."""

    fields: dict[str, Spec] = field(default_factory=dict)

    def check(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected an object, got {describe(value)}"
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            return f"unexpected key(s) {', '.join(repr(str(k)[:40]) for k in unknown[:3])}"
        for k, v in value.items():
            p = self.fields[k].problem(v)
            if p:
                return f"{k}: {p}"
        return None


@dataclass(frozen=True)
class Json(Spec):
    """Free-form JSON that Plotly writes (click and selection events): at most ``max_depth`` levels of lists and
    objects, ``max_nodes`` values in all, strings of ``max_text`` characters, finite numbers."""

    max_depth: int
    max_nodes: int
    max_text: int = 1000

    def check(self, value: Any) -> str | None:
        stack = [(value, 0)]
        nodes = 0
        while stack:  # iterative: the depth is checked, not recursed into
            v, depth = stack.pop()
            nodes += 1
            if nodes > self.max_nodes:
                return f"more than {self.max_nodes:,} values"
            if isinstance(v, (list, dict)):
                if depth >= self.max_depth:
                    return f"nested deeper than {self.max_depth} levels"
                if nodes + len(stack) + len(v) > self.max_nodes:
                    return f"more than {self.max_nodes:,} values"
                items = v.values() if isinstance(v, dict) else v
                if isinstance(v, dict) and any(len(str(k)) > self.max_text for k in v):
                    return f"a key longer than {self.max_text:,} characters"
                stack.extend((x, depth + 1) for x in items)
            elif isinstance(v, str):
                if len(v) > self.max_text:
                    return f"a string longer than {self.max_text:,} characters"
            elif isinstance(v, float) and not math.isfinite(v):
                return "a number that is not finite"
        return None


@dataclass(frozen=True)
class AnyOf(Spec):
    """A value fitting one of ``specs`` (e.g. a number typed in a text field, or one upload or several)."""

    specs: tuple[Spec, ...]

    def check(self, value: Any) -> str | None:
        problems = [s.problem(value) for s in self.specs]
        return None if any(p is None for p in problems) else " or ".join(p for p in problems if p)
