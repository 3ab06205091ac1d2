"""Hostile and plausible values per declared input spec (app.inputs), from a seeded generator, and callback
request bodies built from Dash's callback map the way the renderer builds them.

Hostile values break the declared type or bound (wrong types, one past the length or the range, NaN, deep
nesting); plausible ones fit it at its edges (empty, the longest, the ends of the range, ids that name
nothing, Plotly events that carry junk), so they reach the callback.
"""
from __future__ import annotations

import json
import random
import re
from typing import Any

from app.inputs import AnyOf, Flag, Json, ListOf, Number, Record, Spec, Text

#: A string this long is refused by every text bound, and by the viewer body cap (1 MB) before that.
HUGE = 900_000
#: Values that fit the patterned text specs (model ids, sentence ids, layer:state keys, states).
PATTERNED = ["tiny-lstm", "tiny-gru", "no-such-model", "0:h", "1:c", "99:h", "deadbeef00", "0123456789abcdef", "h",
             "c", "zz"]
#: Marks a place in a body where deeply nested JSON is spliced in (json.dumps itself cannot nest that deep).
DEEP = "__deeply_nested__"
DEEP_JSON = "[" * 100_000 + "]" * 100_000


def _most(spec: Text) -> int:
    return spec.max_len() if callable(spec.max_len) else spec.max_len


def _text(spec: Text, rng: random.Random) -> list[Any]:
    if spec.choices:
        return list(spec.choices)
    if spec.pattern:
        return [v for v in PATTERNED if len(v) <= _most(spec) and re.fullmatch(spec.pattern, v)]
    return ["", "naïve <b>x</b> ' \" \\", "w" * min(_most(spec), 5_000), "data:text/plain;base64,aGk="]


def _number(spec: Number, rng: random.Random) -> list[Any]:
    lo, hi = spec.lo, spec.hi
    return [lo, hi, int((lo + hi) / 2) if spec.integer else (lo + hi) / 2] + ([0] if lo <= 0 <= hi else [])


def _list(spec: ListOf, rng: random.Random) -> list[Any]:
    items = [v for v in plausible(spec.item, rng) if v is not None] or [None]
    return [[], [rng.choice(items) for _ in range(min(spec.max_len, 3))], [items[-1]] * spec.max_len]


def _record(spec: Record, rng: random.Random) -> list[Any]:
    return [{}, {k: rng.choice(plausible(s, rng)) for k, s in spec.fields.items()}]


def _event(spec: Json, rng: random.Random) -> list[Any]:
    """Plotly events, well-formed or not, whose customdata carries junk where the figures put indices."""
    junk = ["abc", -1, 10**6, None, 1.5, [1], {"a": 1}]
    return [{}, {"points": []}, {"points": "x"}, {"points": [1, None, "x"]}] + [
        {"points": [{"customdata": [kind, rng.choice(junk), rng.choice(junk)], "x": 1, "y": "w", "text": "w"}]}
        for kind in ("word", "unit", "chip", "cloud")]


def _any(spec: AnyOf, rng: random.Random) -> list[Any]:
    return [v for s in spec.specs for v in plausible(s, rng)]


_FITTING = {Text: _text, Number: _number, Flag: lambda spec, rng: [True, False], ListOf: _list, Record: _record,
            Json: _event, AnyOf: _any}


def plausible(spec: Spec, rng: random.Random) -> list[Any]:
    """Values that fit ``spec`` at its edges (None always does)."""
    out = [None] + _FITTING[type(spec)](spec, rng)
    return [v for v in out if spec.problem(v) is None]


def hostile(spec: Spec, rng: random.Random) -> list[Any]:
    """Values that break ``spec``: each is refused by its check (the test asserts the server refuses it)."""
    out: list[Any] = [{"a": 1}, [1, [2]], "x" * HUGE, float("nan"), float("inf"), -1, True, 10**30, DEEP]
    if isinstance(spec, Text):
        most = _most(spec)
        out += [12, ["a"], "x" * (most + 1) if most < HUGE else "x" * HUGE]
    elif isinstance(spec, Number):
        out += ["5", spec.lo - 1, spec.hi + 1, -(10**30), spec.lo + 0.5 if spec.integer else None]
    elif isinstance(spec, ListOf):
        items = [v for v in plausible(spec.item, rng) if v is not None] or [0]
        out += [[items[0]] * (spec.max_len + 1), [rng.choice(hostile(spec.item, rng))], "x", {"0": items[0]}]
    elif isinstance(spec, Record):
        out += [{"unknown": 1}, "x" * 100] + [{k: v} for k, s in spec.fields.items() for v in hostile(s, rng)[-3:]]
    elif isinstance(spec, Json):
        nest: Any = 0
        for _ in range(spec.max_depth + 1):
            nest = [nest]
        out += [nest, {"points": [0] * (spec.max_nodes + 1)}, {"points": [{"x": float("nan")}]},
                {"points": ["s" * (spec.max_text + 1)]}]
    return [v for v in out if v == DEEP or v is not None and spec.problem(v) is not None]


def _entry(dep: dict, value: Any) -> dict | list[dict]:
    """The body entry of one dependency; a pattern (ALL) input gets two concrete ids."""
    cid = dep["id"]
    if cid.startswith("{"):
        pattern = json.loads(cid)
        ids = [{k: (i if isinstance(v, list) else v) for k, v in pattern.items()} for i in (0, 1)]
        return [{"id": i, "property": dep["property"], "value": value} for i in ids]
    return {"id": cid, "property": dep["property"], "value": value}


def _outputs(key: str) -> list[dict] | dict:
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outs = []
    for part in parts:
        cid, _, prop = part.rpartition(".")
        outs.append({"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop})
    return outs if key.startswith("..") else outs[0]


def body(key: str, cb: dict, values: dict[tuple[str, str], Any], trigger: int = 0) -> dict:
    """A renderer's request for callback ``key``: each input and state taking ``values[(id, prop)]`` (None when
    absent), the ``trigger``-th input named as the one that changed."""
    inputs = [_entry(d, values.get((d["id"], d["property"]))) for d in cb["inputs"]]
    state = [_entry(d, values.get((d["id"], d["property"]))) for d in cb["state"]]
    first = inputs[trigger][0] if isinstance(inputs[trigger], list) else inputs[trigger]
    fid = first["id"] if isinstance(first["id"], str) else json.dumps(first["id"], sort_keys=True,
                                                                      separators=(",", ":"))
    return {"output": key, "outputs": _outputs(key), "inputs": inputs, "state": state,
            "changedPropIds": [f"{fid}.{first['property']}"]}


def encode(body_: dict) -> str:
    """The body as JSON text, NaN and infinities written as Python's json writes them, the DEEP mark spliced."""
    return json.dumps(body_).replace(json.dumps(DEEP), DEEP_JSON)
