"""The Patterns page through Dash's own dispatch (POST /_dash-update-component), on a planted store."""
from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.settings import Settings
from tests.app.patterns_store import MODEL, PLANTED, THETA, L, build_planted_store, planted_text
from tests.app.test_dispatch import Layout, _body, _walk


@pytest.fixture(scope="module")
def planted_app(tmp_path_factory):
    from app.server import create_app

    root = build_planted_store(tmp_path_factory.mktemp("planted") / "store")
    app = create_app(Settings(store=root))
    app.server.config["PROPAGATE_EXCEPTIONS"] = True
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    assert client.get("/patterns").status_code == 200
    return app, client, deps


def _dep(deps, output: str) -> dict:
    return next(d for d in deps if output in d["output"])


def _post(client, dep, layout: Layout, values: dict[str, Any], trigger: str | None = None) -> dict:
    body = _body(dep, layout)
    for entry in body["inputs"] + body["state"]:
        for e in entry if isinstance(entry, list) else [entry]:
            key = e["id"] if isinstance(e["id"], str) else e["id"].get("type")
            if key in values:
                e["value"] = values[key]
    if trigger:
        body["changedPropIds"] = [trigger]
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return resp.get_json()["response"]


def _layout(app, query: str) -> Layout:
    import dash
    page = next(p for p in dash.page_registry.values() if p["path"] == "/patterns")
    from urllib.parse import parse_qs
    with app.server.test_request_context("/patterns"):
        tree = page["layout"](**{k: v[0] if len(v) == 1 else v for k, v in parse_qs(query).items()})
    components: dict[str, Any] = {}
    _walk(tree, components)
    return Layout(components)


def test_select_a_span_propose_units_search_and_summarise_through_dispatch(planted_app):
    app, client, deps = planted_app
    _, _, _, starts = planted_text()
    first = int(starts[0])
    at = first - 2
    layout = _layout(app, f"model={MODEL}&layer=0&state=h&theta={THETA}&at={at}")
    # two clicks on the passage's tokens: the first and the last of the span (token indices in the passage)
    token = _dep(deps, "patterns-span.data@")
    span = None
    for index in (2, 2 + L - 1):
        body = _body(token, layout)
        body["inputs"][0] = [{"id": {"type": "patterns-token", "index": i}, "property": "n_clicks",
                              "value": 1 if i == index else 0} for i in range(40)]
        body["state"][0]["value"] = span
        body["changedPropIds"] = [json.dumps({"index": index, "type": "patterns-token"}, separators=(",", ":"))
                                  + ".n_clicks"]
        resp = client.post("/_dash-update-component", json=body)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
        span = resp.get_json()["response"]["patterns-span"]["data"]
    assert span == {"start": first, "stop": first + L, "pending": False}
    # the proposal: the planted units (the noise units are not on for all L tokens here, or rarely)
    units = _post(client, _dep(deps, "patterns-units.value"), layout,
                  {"patterns-span": span, "patterns-theta": THETA, "patterns-key": "0:h", "patterns-at": at,
                   "patterns-model": MODEL, "patterns-source": "corpus", "patterns-options": ["off"]},
                  "patterns-span.data")["patterns-units"]["value"]
    assert set(PLANTED) <= set(units)
    # search with the planted units: every trigger, nothing else
    search = next(d for d in deps if "patterns-matches" in d["output"]
                  and any(i["id"] == "patterns-search" for i in d["inputs"]))   # not the trace's clearing
    out = _post(client, search, layout,
                {"patterns-units": list(PLANTED), "patterns-span": span, "patterns-theta": THETA,
                 "patterns-key": "0:h", "patterns-model": MODEL, "patterns-options": ["off"],
                 "patterns-search": 1, "patterns-min": None, "patterns-at": at, "patterns-source": "corpus"},
                "patterns-search.n_clicks")
    assert out["patterns-count"]["children"].startswith(f"{len(starts)} matches of 3 units")
    listed = json.dumps(out["patterns-match-list"]["children"])
    assert f"@{first} " in listed and "3/3 units" in listed
    summary = json.dumps(out["patterns-summary"]["children"])
    assert "trigger 100%" in summary and "NOUN 100%" in summary
    fig = next(v for k, v in out.items() if "patterns-matches" in k)["figure"]
    assert fig["data"][0]["type"] == "heatmap" and len(fig["data"][0]["y"]) == min(30, len(starts))
    # the URL carries the pattern; the page built from it shows the same span and units
    url = _post(client, _dep(deps, "patterns-url.search"), layout,
                {"patterns-model": MODEL, "patterns-key": "0:h", "patterns-units": list(PLANTED),
                 "patterns-theta": THETA, "patterns-span": span, "patterns-options": ["off"],
                 "patterns-min": None, "patterns-at": at, "patterns-source": "corpus", "patterns-sentence": None},
                "patterns-units.value")["patterns-url"]["search"]
    assert f"from={first}&len={L}" in url and "u=2&u=5&u=11" in url and "ob=1" in url
    again = _layout(app, url.lstrip("?"))
    assert again.value("patterns-units", "value", False) == list(PLANTED)
    assert again.value("patterns-span", "data", False) == span


def test_passage_and_a_model_without_token_states(planted_app):
    app, client, deps = planted_app
    layout = _layout(app, f"model={MODEL}&at=100")
    out = _post(client, _dep(deps, "patterns-tokens.children"), layout,
                {"patterns-model": MODEL, "patterns-key": "0:h", "patterns-source": "corpus", "patterns-at": 100,
                 "patterns-span": None, "patterns-theta": 0.5, "patterns-units": [2, 5]},
                "patterns-at.value")
    assert len(out["patterns-tokens"]["children"]) == 40
    assert next(v for k, v in out.items() if "patterns-passage" in k)["figure"]["data"][0]["y"] == ["u2", "u5"]
    bad = _post(client, _dep(deps, "patterns-key.options"), layout, {"patterns-model": "nope"},
                "patterns-model.value")
    assert "nope" in json.dumps(bad["patterns-alert"]["children"])
