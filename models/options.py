"""Settings declared once: each option of a config dataclass is a field made by :func:`option`.

A field's metadata holds what a user needs to know about it (its help, its range or its choices, the
Jobs form's label) next to its default and type, and everything else is derived from it: the
configs' ``validate()`` (:func:`check`), the command line's flags (:func:`add_flags`), the Jobs form's
fields and bounds (:func:`form_fields`) and docs/options.md (:func:`options_table`, written by
``python -m analytics.options_doc``).

Why dataclass field metadata rather than pydantic: the configs stay the plain dataclasses that every
checkpoint stores (``dataclasses.asdict``/``cls(**d)``) and that the command line reads without
importing anything heavy; a range and a choice list take a dozen lines to check, and a new dependency
would change how a config is built, copied and stored for no more than that.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "number", "Option", "Declared", "FormField", "option", "declared", "check", "form_fields",
           "add_flags", "options_table"]


def number(x: float) -> str:
    """A bound in words: whole numbers in full (2147483647, not 2.14748e+09), others as %g."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


class ConfigError(ValueError):
    """A configuration value that cannot work, with the field named."""


@dataclass(frozen=True)
class Option:
    """What is declared of one setting besides its name, type and default."""

    help: str
    low: float | None = None           # inclusive; None: no bound
    high: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""                    # the Jobs form's label (default: the name, capitalised)
    offered: bool = True               # a command-line flag and (training settings) a Jobs form field


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           choices: tuple[str, ...] = (), label: str = "", offered: bool = True) -> Any:
    """A dataclass field declaring one setting (use as ``name: int = option(3, "what it does", low=1)``)."""
    return dataclasses.field(default=default, metadata={"option": Option(help, low, high, tuple(choices), label,
                                                                         offered)})


@dataclass(frozen=True)
class Declared:
    """One setting of a config class: its name, type (int, float or str), default and declaration."""

    name: str
    kind: type
    default: Any
    option: Option

    @property
    def label(self) -> str:
        return self.option.label or self.name.replace("_", " ").capitalize()

    def allowed(self) -> str:
        """The allowed values in words: "rnn, gru, lstm", "1 to 8192", "at least 0" or ""."""
        o = self.option
        if o.choices:
            return ", ".join(o.choices)
        if o.low is not None and o.high is not None:
            return f"{number(o.low)} to {number(o.high)}"
        if o.low is not None:
            return f"at least {number(o.low)}"
        return f"at most {number(o.high)}" if o.high is not None else ""


def declared(cls: type) -> list[Declared]:
    """The settings of a config dataclass (class or instance), in field order; TypeError for a field made
    without :func:`option` (every setting must say what it is)."""
    out = []
    for f in dataclasses.fields(cls):
        if "option" not in f.metadata:
            raise TypeError(f"{getattr(cls, '__name__', type(cls).__name__)}.{f.name} is not declared with "
                            f"models.options.option(default, help, ...)")
        out.append(Declared(f.name, type(f.default), f.default, f.metadata["option"]))
    return out


def _problem(d: Declared, v: Any) -> str | None:
    """Why ``v`` is not a value of setting ``d``, or None."""
    o = d.option
    if o.choices:
        return None if v in o.choices else f"must be one of {', '.join(o.choices)}, got {v!r}"
    if d.kind not in (int, float):
        return None
    whole = d.kind is int
    if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)) or not math.isfinite(v):
        return f"must be a {'whole number' if whole else 'number'}, got {v!r}"
    if (o.low is not None and v < o.low) or (o.high is not None and v > o.high):
        both = o.low is not None and o.high is not None
        return f"must be {f'between {number(o.low)} and {number(o.high)}' if both else d.allowed()}, got {v!r}"
    return None


def check(cfg: Any) -> None:
    """ConfigError naming the first setting of ``cfg`` whose value is not of its type, range or choices."""
    for d in declared(cfg):
        problem = _problem(d, getattr(cfg, d.name))
        if problem:
            raise ConfigError(f"{d.name} {problem}")


@dataclass(frozen=True)
class FormField:
    """One setting as a form field: its type and, for numbers, its range; for text, its choices."""

    name: str
    kind: type                       # int, float or str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""
    help: str = ""
    default: Any = None


def form_fields(*classes: type) -> dict[str, FormField]:
    """The offered settings of ``classes`` as form fields, by name; a name declared by several classes gets the
    narrowest range (a value must pass every one of them)."""
    fields: dict[str, FormField] = {}
    for cls in classes:
        for d in declared(cls):
            if not d.option.offered:
                continue
            lo = -math.inf if d.option.low is None else d.option.low
            hi = math.inf if d.option.high is None else d.option.high
            if d.name in fields:
                lo, hi = max(lo, fields[d.name].low), min(hi, fields[d.name].high)
            kind = str if d.option.choices else d.kind
            default = fields[d.name].default if d.name in fields else d.default
            fields[d.name] = FormField(d.name, kind, None if kind is str else lo, None if kind is str else hi,
                                       d.option.choices, d.label, d.option.help, default)
    return fields


def add_flags(parser: Any, *classes: type, show_default: bool = False) -> list[str]:
    """Add a ``--flag-name`` to an argparse parser or group for each offered setting of ``classes`` (a name once);
    returns their dests.  ``show_default``: say the default in the help (off where a preset sets it)."""
    fields = form_fields(*classes)
    for f in fields.values():
        text = f.help + (f" (default {f.default})" if show_default else "")
        if f.low is not None and math.isfinite(f.low) and math.isfinite(f.high):
            text += f"; {number(f.low)} to {number(f.high)}"
        elif f.low is not None and math.isfinite(f.low):
            text += f"; at least {number(f.low)}"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=f.kind, choices=f.choices or None,
                            help=text.replace("%", "%%"))
    return list(fields)


def options_table(cls: type) -> str:
    """A Markdown table of the settings of ``cls``: name, flag (if offered), type, default, allowed values, help."""
    rows = ["| setting | flag | type | default | allowed | what it does |", "|---|---|---|---|---|---|"]
    for d in declared(cls):
        flag = f"`--{d.name.replace('_', '-')}`" if d.option.offered else "no"
        rows.append(f"| `{d.name}` | {flag} | {d.kind.__name__} | `{d.default!r}` | {d.allowed() or 'any'} | "
                    f"{d.option.help} |")
    return "\n".join(rows) + "\n"
