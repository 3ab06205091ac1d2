"""Every registered server callback, called through Dash's own dispatch (POST /_dash-update-component).

The request body is built from the app's callback map the way the renderer
builds it (outputs, inputs and state with the ids and properties declared,
values taken from the pages' layouts), so a callback whose Python signature
does not match its Outputs / Inputs / States (Dash 4 flattens a list of
States into separate arguments, for instance) fails here, in a second,
instead of as an HTTP 500 in a user's browser.
"""
from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from analytics.settings import Settings

#: Properties a click, an upload or a timer sets: a callback triggered by one of them gets a plausible event.
EVENT_PROPS = {"n_clicks": 1, "submit_n_clicks": 1, "n_intervals": 1, "n_submit": 1, "n_blur": 1}
WILDCARDS = ("ALL", "MATCH", "ALLSMALLER")


def _walk(component, found: dict[str, Any]) -> None:
    """Map every component id in a layout (pattern ids as Dash's sorted JSON) to its component."""
    if isinstance(component, (list, tuple)):
        for c in component:
            _walk(c, found)
        return
    cid = getattr(component, "id", None)
    if cid is not None:
        found[cid if isinstance(cid, str) else json.dumps(cid, sort_keys=True, separators=(",", ":"))] = component
    for prop in getattr(component, "_prop_names", ()):
        value = getattr(component, prop, None)
        if hasattr(value, "to_plotly_json") or isinstance(value, (list, tuple)):
            _walk(value, found)


def _parse_id(raw: str) -> str | dict:
    return json.loads(raw) if raw.startswith("{") else raw


def _matches(pattern: dict, concrete: dict) -> bool:
    return pattern.keys() == concrete.keys() and all(
        isinstance(v, list) and v and v[0] in WILDCARDS or concrete[k] == v for k, v in pattern.items())


def _concrete(pattern: dict) -> dict:
    """An id the renderer could send for a pattern that no layout holds yet (e.g. a job's Cancel button)."""
    return {k: ("j00000000" if isinstance(v, list) else v) for k, v in pattern.items()}


class Layout:
    def __init__(self, components: dict[str, Any]):
        self.components = components
        self.pattern_ids = [json.loads(k) for k in components if k.startswith("{")]

    def value(self, cid: str | dict, prop: str, trigger: bool) -> Any:
        key = cid if isinstance(cid, str) else json.dumps(cid, sort_keys=True, separators=(",", ":"))
        comp = self.components.get(key)
        value = getattr(comp, prop, None) if comp is not None else None
        if prop == "id":
            return cid
        if trigger and prop in EVENT_PROPS and not value:
            return EVENT_PROPS[prop]
        if value is None and prop == "value" and getattr(comp, "options", None):
            first = comp.options[0]
            return first.get("value") if isinstance(first, dict) else first
        return value

    def items(self, raw: str, prop: str, trigger: bool) -> dict | list[dict]:
        """The body entry of one dependency: a dict, or a list of dicts for ALL / ALLSMALLER patterns."""
        cid = _parse_id(raw)
        if isinstance(cid, str) or not any(isinstance(v, list) for v in cid.values()):
            return {"id": cid, "property": prop, "value": self.value(cid, prop, trigger)}
        found = [c for c in self.pattern_ids if _matches(cid, c)] or [_concrete(cid)]
        entries = [{"id": c, "property": prop, "value": self.value(c, prop, trigger)} for c in found]
        if any(v == ["MATCH"] for v in cid.values()):
            return entries[0]
        return entries


def _outputs(spec: str, layout: Layout) -> list:
    """``..a.children...b.data@x..`` (or ``a.children``) as the renderer's outputs list."""
    parts = spec[2:-2].split("...") if spec.startswith("..") else [spec]
    out = []
    for part in parts:
        raw, prop = part.rsplit(".", 1)
        cid = _parse_id(raw)
        if isinstance(cid, dict) and any(isinstance(v, list) for v in cid.values()):
            out.append([{"id": c, "property": prop} for c in layout.pattern_ids if _matches(cid, c)])
        else:
            out.append({"id": cid, "property": prop})
    return out if spec.startswith("..") else out[0]


def _body(dep: dict, layout: Layout) -> dict:
    inputs = [layout.items(i["id"], i["property"], n == 0) for n, i in enumerate(dep["inputs"])]
    state = [layout.items(s["id"], s["property"], False) for s in dep["state"]]
    first = inputs[0][0] if isinstance(inputs[0], list) and inputs[0] else inputs[0]
    fid = first["id"] if isinstance(first["id"], str) else json.dumps(first["id"], sort_keys=True,
                                                                      separators=(",", ":"))
    return {"output": dep["output"], "outputs": _outputs(dep["output"], layout), "inputs": inputs, "state": state,
            "changedPropIds": [f"{fid}.{first['property']}"]}


@pytest.fixture(scope="module")
def dispatch_app(tiny_store, tmp_path_factory):
    """The real dashboard on a throw-away copy of the tiny store (callbacks may queue a job or save a query)."""
    from app.server import create_app

    root = tmp_path_factory.mktemp("dispatch") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    app = create_app(Settings(store=root))
    app.server.config["PROPAGATE_EXCEPTIONS"] = True  # a failing callback raises here, with its traceback
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()   # the first request registers the pages' callbacks
    assert client.get("/").status_code == 200
    components: dict[str, Any] = {}
    _walk(app.validation_layout, components)
    return app, client, deps, Layout(components)


def test_every_server_callback_runs_through_dash_dispatch(dispatch_app):
    app, client, deps, layout = dispatch_app
    server_side = [d for d in deps if not d.get("clientside_function")]
    assert len(server_side) >= 20 and any("jobs-banner" in d["output"] for d in server_side)
    failures, codes = [], {}
    for dep in server_side:
        body = _body(dep, layout)
        try:
            resp = client.post("/_dash-update-component", json=body)
        except Exception as e:  # noqa: BLE001 - collect them all, report at the end
            failures.append(f"{dep['output']}: {type(e).__name__}: {e}")
            continue
        codes[dep["output"]] = resp.status_code
        if resp.status_code not in (200, 204):
            failures.append(f"{dep['output']}: HTTP {resp.status_code}: {resp.get_data(as_text=True)[:300]}")
    assert not failures, "\n".join(failures)
    assert sum(c == 200 for c in codes.values()) >= len(codes) // 2  # most of them answered with an update


def test_the_jobs_form_answers_field_by_field_through_dispatch(dispatch_app):
    """Submit with a zero hidden size, as the browser sends it: a banner and the field's message, no 500."""
    app, client, deps, layout = dispatch_app
    dep = next(d for d in deps if "jobs-banner.children" in d["output"])
    body = _body(dep, layout)
    for entry in body["state"]:
        if entry["id"] == "jobs-field-hidden-size":
            entry["value"] = 0
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200
    out = resp.get_json()["response"]
    assert "Not submitted" in json.dumps(out["jobs-banner"])
    assert "between 1 and 8192" in out["jobs-error-hidden-size"]["children"]


def test_every_action_feeds_a_callback_that_a_viewer_is_refused(tiny_store, tmp_path_factory):
    """Each id of app.ids.ACTION_ROLES is the input of a callback, and in hosted mode the gate refuses a viewer
    every one of them before it runs (a renamed id cannot drop its role check: the map holds the constants)."""
    import re

    from app import ids
    from app.hosted import auth
    from app.server import create_app

    root = tmp_path_factory.mktemp("dispatch-hosted") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    users = auth.UserStore(root.parent / "users.json")
    users.add("vic", "viewer-pass-1", "viewer")
    app = create_app(Settings(store=root, auth=True, secret_key="k" * 40, users_file=users.path,
                              cookie_secure=False))
    client = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": "vic", "password": "viewer-pass-1", "csrf": token}).status_code \
        == 303
    deps = client.get("/_dash-dependencies").get_json()
    components: dict[str, Any] = {}
    _walk(app.validation_layout, components)
    layout = Layout(components)

    def actions_of(dep) -> set[str]:
        keys = set()
        for i in dep["inputs"]:
            cid = _parse_id(i["id"])
            keys.add(cid.get("type") if isinstance(cid, dict) else cid)
        return keys & set(ids.ACTION_ROLES)

    gated: dict[str, list] = {}
    for dep in deps:
        for action in actions_of(dep):
            gated.setdefault(action, []).append(dep)
    assert set(gated) == set(ids.ACTION_ROLES), set(ids.ACTION_ROLES) - set(gated)
    for action, found in gated.items():
        for dep in found:
            resp = client.post("/_dash-update-component", json=_body(dep, layout))
            text = resp.get_data(as_text=True)
            assert resp.status_code in (200, 403) and "Only " in text and "vic (viewer)" in text, (action, text[:300])
    assert not (root / "jobs").exists() and not (root / "uploads").exists()
