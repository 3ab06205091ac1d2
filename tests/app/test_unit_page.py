"""The unit page and the links to it, through Dash's own dispatch and the page's own rendering (issue 22)."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

import pytest

from analytics import store
from analytics.settings import Settings
from app import ids
from app.server import create_app
from tests.app.dispatching import _key, dispatch


@pytest.fixture(scope="module")
def client(wide_store):
    app = create_app(Settings(store=wide_store))
    c = app.server.test_client()
    assert c.get("/healthz").status_code == 200     # registers the pages' callbacks
    return app, c


def _layout(client, query: str) -> str:
    """The unit page's layout for ``query`` as its JSON text (drawn in a request of the app, as Dash does)."""
    import dash
    app, _ = client
    page = next(p for p in dash.page_registry.values() if p["path"] == "/unit")
    with app.server.test_request_context("/unit?" + query):
        return json.dumps(page["layout"](**{k: v[0] for k, v in parse_qs(query).items()}), cls=_Encoder,
                          ensure_ascii=False)


class _Encoder(json.JSONEncoder):
    def default(self, o):
        return o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o)


def test_explore_links_the_selected_unit_and_finds_units(client, wide_store):
    app, c = client
    out = dispatch(app, c, ids.EX_UNIT_LINK, {ids.EX_MODEL: "tiny-wide", ids.EX_LAYER: 1, ids.EX_STATE: "c",
                                              ids.EX_K: 4, ids.EX_SELECTION: {"chip": 1, "unit": 7}},
                   f"{ids.EX_SELECTION}.data")
    assert out[(_key(ids.EX_UNIT_LINK), "href")] == "/unit?model=tiny-wide&layer=1&state=c&k=4&unit=7"

    def find(go: int, text: str, mode: str):
        values = {ids.EX_FIND_GO: go, (ids.EX_FIND_TEXT, "value"): text, ids.EX_FIND_MODE: mode,
                  ids.EX_MODEL: "tiny-wide", ids.EX_K: 4}
        out = dispatch(app, c, ids.EX_FIND_RESULTS, values, f"{ids.EX_FIND_GO}.n_clicks")
        return json.dumps(out[(_key(ids.EX_FIND_RESULTS), "children")])
    got = re.findall(r'"href": "(/unit\?[^"]+)"', find(1, "ADJ", "tag"))
    want = store.query(store.connect(wide_store), "SELECT layer, state, unit FROM unit_tags WHERE model_id = "
                       "'tiny-wide' AND tag = 'ADJ' AND z IS NOT NULL ORDER BY z DESC, layer, state, unit LIMIT 25", [])
    assert got == [f"/unit?model=tiny-wide&layer={r.layer}&state={r.state}&k=4&unit={r.unit}"
                   for r in want.itertuples()]
    assert "Type a word" in find(2, "", "word")


def test_compare_and_patterns_link_units_to_their_pages(client):
    app, c = client
    out = dispatch(app, c, ids.CMP_MATCHES, {ids.CMP_MODEL_A: "tiny-wide", ids.CMP_LAYER_A: 0,
                                             ids.CMP_MODEL_B: "tiny-wide", ids.CMP_LAYER_B: 1, ids.CMP_STATE: "h",
                                             ids.CMP_K: 4, ids.CMP_NWORDS: 10}, f"{ids.CMP_MODEL_A}.value")
    links = re.findall(r'"href": "(/unit\?[^"]+)"', json.dumps(out[(_key(ids.CMP_MATCHES), "children")]))
    assert links and all("b=tiny-wide" in h for h in links)
    assert any("layer=0" in h and "layer_b=1" in h for h in links)
    out = dispatch(app, c, ids.PT_UNIT_LINKS, {ids.PT_MODEL: "tiny-wide", ids.PT_KEY: "1:h", ids.PT_UNITS: [3, 9]},
                   f"{ids.PT_UNITS}.value")
    text = json.dumps(out[(_key(ids.PT_UNIT_LINKS), "children")])
    assert "/unit?model=tiny-wide&layer=1&state=h&unit=3" in text and "unit=9" in text


def test_the_page_shows_the_unit_or_says_what_is_wrong(client):
    c = client
    page = _layout(c, "model=tiny-wide&layer=1&state=h&unit=5")
    assert "tiny-wide · layer 1 · h · unit 5" in page and "unit-ctx-h_top" in page and "unit-description" in page
    assert "Traceback" not in _layout(c, "model=nope&layer=1&state=h&unit=5")
    assert "unknown model" in _layout(c, "model=nope&layer=1&state=h&unit=5").lower()
    fixed = _layout(c, "model=tiny-wide&layer=9&state=q&unit=999")
    assert "showing layer 0, state h, unit 31" in fixed
