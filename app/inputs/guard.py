"""The check in front of Dash's dispatch: every ``/_dash-update-component`` request, before any callback runs.

A Flask ``before_request`` hook (installed after the body caps and the hosted gate, so an anonymous or
over-sized request is refused before this reads anything) checks the request as Dash's renderer builds it
against the app's own callback map: the callback exists, the outputs are the ones it declares, the inputs and
states are its own ids and properties in its order, ``changedPropIds`` names only those, and each value fits
its declared spec in :data:`app.inputs.table.SCHEMAS`. Anything else is answered 400 with what was wrong,
and the callback never runs. An input without a declared spec is refused too (fail closed; the fuzz test
says which).

The hook reads Dash's callback map, not the pages' source, so it covers every server callback however it
was registered. The app's JSON provider answers JSON nested past Python's recursion limit as malformed
(400), where the standard one raises RecursionError (500).
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import flask
from flask.json.provider import DefaultJSONProvider

from app.inputs.specs import describe
from app.inputs.table import MAX_MATCHED, SCHEMAS, dep_key

if TYPE_CHECKING:
    import dash

log = logging.getLogger(__name__)

__all__ = ["BoundedJSONProvider", "check_body", "install", "server_callbacks"]

WILDCARDS = ('["ALL"]', '["MATCH"]', '["ALLSMALLER"]')
MAX_BODY_KEYS = 16


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a document nested past the recursion limit read as malformed (ValueError -> 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON document is nested too deeply") from None


def _declared_outputs(output: str) -> list[tuple[str, str]]:
    """(id, property) of each output named by a callback-map key (``..a.x...b.y..`` or ``a.x``)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    found = []
    for part in parts:
        cid, _, prop = part.rpartition(".")
        found.append((cid.replace("\\.", "."), prop.split("@")[0]))
    return found


def _id_key(cid: Any) -> str | None:
    """A posted component id as the callback map writes it; None if it is not an id at all."""
    if isinstance(cid, str):
        return cid if len(cid) <= 1024 else None
    if isinstance(cid, dict) and len(cid) <= 4 and all(_id_part(v) for v in cid.values()):
        return dep_key(cid)
    return None


def _id_part(v: Any) -> bool:
    """A value of a pattern id: a short string, or a whole number such as an index (of a token, a job)."""
    if isinstance(v, str):
        return len(v) <= 128
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 1 << 31


def _check_outputs(output: str, posted: Any) -> str | None:
    declared = _declared_outputs(output)
    multi = output.startswith("..")
    outs = posted if multi else [posted]
    if not isinstance(outs, list) or len(outs) != len(declared):
        return f"outputs: expected {len(declared)} output(s), got {describe(posted)}"
    for (cid, prop), out in zip(declared, outs):
        if any(w in cid for w in WILDCARDS):
            ok = isinstance(out, list) and len(out) <= MAX_MATCHED and all(isinstance(o, dict) for o in out)
        else:
            ok = (isinstance(out, dict) and _id_key(out.get("id")) == cid and isinstance(out.get("property"), str)
                  and out["property"].split("@")[0] == prop)
        if not ok:
            return f"outputs: not the outputs of this callback (expected {cid}.{prop})"
    return None


def _pattern_matches(pattern: str, cid: Any) -> bool:
    """Whether a posted id (scalars only, :func:`_id_key` checked it) fits a pattern id: the same keys, the same
    values but at the wildcards."""
    if not isinstance(cid, dict):
        return False
    want = json.loads(pattern)
    return set(want) == set(cid) and all(isinstance(v, list) or cid[k] == v for k, v in want.items())


def _check_entry(dep: dict, entry: Any, where: str, changed: set[str]) -> str | None:
    """One posted input or state against its declared dependency; adds its ``id.prop`` names to ``changed``."""
    cid, prop = dep["id"], dep["property"]
    spec = SCHEMAS.get((cid, prop))
    if spec is None:
        log.error("callback input %s.%s has no declared schema in app.inputs.table: refused", cid, prop)
        return f"{where} {cid}.{prop} has no declared schema"
    wildcard = any(w in cid for w in WILDCARDS)
    many = wildcard and '["MATCH"]' not in cid
    entries = entry if many else [entry]
    if not isinstance(entries, list) or len(entries) > MAX_MATCHED:
        return f"{where} {cid}.{prop}: expected up to {MAX_MATCHED} entries, got {describe(entry)}"
    for e in entries:
        if not isinstance(e, dict) or set(e) - {"id", "property", "value"} or e.get("property") != prop:
            return f"{where} {cid}.{prop}: not an entry of this callback"
        key = _id_key(e.get("id"))
        if key is None or (key != cid if not wildcard else not _pattern_matches(cid, e["id"])):
            return f"{where} {cid}.{prop}: another component's id"
        problem = spec.problem(e.get("value"))
        if problem:
            return f"{where} {cid}.{prop}: {problem}"
        changed.add(f"{key}.{prop}")
    return None


def _check_deps(declared: list[dict], posted: Any, where: str, changed: set[str]) -> str | None:
    if posted is None and not declared:
        return None
    if not isinstance(posted, list) or len(posted) != len(declared):
        return f"{where}s: expected {len(declared)}, got {describe(posted)}"
    for dep, entry in zip(declared, posted):
        problem = _check_entry(dep, entry, where, changed)
        if problem:
            return problem
    return None


def server_callbacks(callback_map: dict) -> dict:
    """The callbacks of the map that run on the server (a clientside one has no Python function to call)."""
    return {k: cb for k, cb in callback_map.items() if "callback" in cb}


def check_body(callback_map: dict, body: Any) -> str | None:
    """What is wrong with a ``/_dash-update-component`` request body for this callback map (None: nothing)."""
    if not isinstance(body, dict) or len(body) > MAX_BODY_KEYS:
        return f"expected a callback request (a JSON object), got {describe(body)}"
    output = body.get("output")
    cb = server_callbacks(callback_map).get(output) if isinstance(output, str) else None
    if cb is None:
        return "no such callback"
    problem = _check_outputs(output, body.get("outputs"))
    inputs: set[str] = set()
    problem = problem or _check_deps(cb.get("inputs", []), body.get("inputs"), "input", inputs)
    problem = problem or _check_deps(cb.get("state", []), body.get("state"), "state", set())
    if problem:
        return problem
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or len(changed) > len(inputs) or any(c not in inputs for c in changed
                                                                           if isinstance(c, str)) \
            or not all(isinstance(c, str) for c in changed):
        return "changedPropIds: not among this callback's inputs"
    return None


def install(app: dash.Dash) -> None:
    """The bounded JSON provider and the check of every callback request, on the app's Flask server."""
    server = app.server
    server.json = BoundedJSONProvider(server)

    @server.before_request
    def _check_callback_request():
        req = flask.request
        if req.method != "POST" or not req.path.endswith("/_dash-update-component"):
            return None
        problem = check_body(app.callback_map, req.get_json(silent=True))
        if problem is None:
            return None
        log.info("refused a callback request: %s", problem)
        return flask.jsonify({"error": f"refused: {problem}. Reload the page if this came from it."}), 400
