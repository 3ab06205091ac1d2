"""The projection page: its maps, its selection and its links to Explore, through Dash's own dispatch
(POST /_dash-update-component, bodies built from the app's callback map as the renderer builds them)."""
from __future__ import annotations

import json
import shutil
from urllib.parse import parse_qs, urlparse

import pytest

from analytics.settings import Settings
from app import ids
from app.figures.projection import paired_unit_figure, unit_map_figure, word_map_figure
from app.logic import projection as logic
from app.urlstate import from_query, to_query
from tests.app.test_dispatch import Layout, _body, _walk


def _key(cid) -> str:
    return cid if isinstance(cid, str) else json.dumps(cid, sort_keys=True, separators=(",", ":"))


@pytest.fixture(scope="module")
def dash_app(tiny_store, tmp_path_factory):
    from app.server import create_app

    root = tmp_path_factory.mktemp("projection") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    app = create_app(Settings(store=root))
    app.server.config["PROPAGATE_EXCEPTIONS"] = True
    client = app.server.test_client()
    deps = client.get("/_dash-dependencies").get_json()
    assert client.get("/projection").status_code == 200
    components: dict = {}
    _walk(app.validation_layout, components)
    return app, client, deps, Layout(components), root


def dispatch(dash_app, output: str, values: dict, trigger: tuple | None = None) -> dict:
    """Run the callback whose output names ``output`` with ``values`` {(id, prop): value} set in its inputs and
    state, fired by ``trigger`` (id, prop); returns the response's outputs by id."""
    _, client, deps, layout, _ = dash_app
    dep = next(d for d in deps if output in d["output"])
    body = _body(dep, layout)
    for entry in body["inputs"] + body["state"]:
        v = values.get((_key(entry["id"]), entry["property"]))
        if v is not None:
            entry["value"] = v
    if trigger:
        body["changedPropIds"] = [f"{_key(trigger[0])}.{trigger[1]}"]
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return resp.get_json()["response"]


VIEW = {(ids.PJ_MODEL, "value"): "tiny-lstm", (ids.PJ_LAYER, "value"): 1, (ids.PJ_STATE, "value"): "h",
        (ids.PJ_METHOD, "value"): "tsne", (ids.PJ_K, "value"): 3, (ids.PJ_COLOR, "value"): "pos"}


def _traces(fig: dict, axis: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("customdata") and t["customdata"][0][0] == axis]


def test_the_maps_come_through_dispatch_with_the_selection_highlighted(dash_app):
    values = {**{(k[0], k[1]): v for k, v in VIEW.items()},
              (ids.PJ_SELECTION, "data"): {"words": ["the"], "units": [2]}}
    out = dispatch(dash_app, "projection-summary.children", {(_key(k), p): v for (k, p), v in values.items()})
    words = out[_key(ids.PJ_WORDS)]["figure"]
    units = out[_key(ids.PJ_UNITS)]["figure"]
    wt, ut = _traces(words, "word"), _traces(units, "unit")
    assert sum(len(t["x"]) for t in wt) > 5 and sum(len(t["x"]) for t in ut) == 8
    hit = [(t, t["selectedpoints"]) for t in wt if t.get("selectedpoints")]
    assert len(hit) == 1 and [t["customdata"][i][1] for t, sel in hit for i in sel] == ["the"]
    assert any(t.get("selectedpoints") == [t["customdata"].index(["unit", 2, "a"])] for t in ut)
    hover = " ".join(h for t in wt for h in t["hovertext"])
    assert "n = " in hover and "POS" in hover and "cluster W" in hover
    assert words["layout"]["dragmode"] == "lasso"
    assert "t-SNE" in json.dumps(out[ids.PJ_SUMMARY]["children"])


def test_a_lasso_selects_words_most_frequent_first_and_the_link_carries_them_to_explore(dash_app):
    from app.reader import Reader
    data = Reader(dash_app[4]).layer_data("tiny-lstm", 1, "h")
    freq = {str(w): int(f) for w, f in zip(data.words, data.freq)}
    picked = [str(w) for w in data.words[::-1][:4]]                      # rarest first in the lasso
    lasso = {"points": [{"customdata": ["word", w, "a"]} for w in picked]}
    values = {(ids.PJ_MODEL, "value"): "tiny-lstm", (ids.PJ_LAYER, "value"): 1, (ids.PJ_STATE, "value"): "h",
              (ids.PJ_SELECTION, "data"): {"words": [], "units": []}, (_key(ids.PJ_WORDS), "selectedData"): lasso}
    out = dispatch(dash_app, "projection-selection.data", values, (ids.PJ_WORDS, "selectedData"))
    sel = out[ids.PJ_SELECTION]["data"]
    assert sorted(sel["words"]) == sorted(picked)
    assert [freq[w] for w in sel["words"]] == sorted((freq[w] for w in sel["words"]), reverse=True)
    # a click on a unit adds it; the URL and the Explore link follow
    click = {"points": [{"customdata": ["unit", 5, "a"]}]}
    out = dispatch(dash_app, "projection-selection.data", {**values, (ids.PJ_SELECTION, "data"): sel,
                                                           (_key(ids.PJ_UNITS), "clickData"): click},
                   (ids.PJ_UNITS, "clickData"))
    sel = out[ids.PJ_SELECTION]["data"]
    assert sel["units"] == [5] and len(sel["words"]) == 4
    out = dispatch(dash_app, "projection-url.search", {**values, (ids.PJ_SELECTION, "data"): sel,
                                                       (ids.PJ_K, "value"): 3})
    q = parse_qs(out[ids.PJ_URL]["search"].lstrip("?"))
    assert q["w"] == sel["words"] and q["unit"] == ["5"] and q["model"] == ["tiny-lstm"]
    href = out[ids.PJ_EXPLORE_LINK]["href"]
    eq = parse_qs(urlparse(href).query)
    assert href.startswith("/explore?") and eq["w"] == sel["words"][:3] and eq["unit"] == ["5"]
    assert "3 most frequent of 4" in out[ids.PJ_EXPLORE_LINK]["children"]
    # clear
    out = dispatch(dash_app, "projection-selection.data", {**values, (ids.PJ_SELECTION, "data"): sel,
                                                           (ids.PJ_CLEAR, "n_clicks"): 1}, (ids.PJ_CLEAR, "n_clicks"))
    assert out[ids.PJ_SELECTION]["data"] == {"words": [], "units": []}


def test_explore_links_its_view_to_the_map(dash_app):
    search = "?model=tiny-lstm&layer=0&state=h&w=the&unit=3"
    out = dispatch(dash_app, "explore-map-link.href", {(ids.EX_URL, "search"): search})
    href = out[ids.EX_MAP_LINK]["href"]
    assert href == "/projection" + search
    vs = from_query(urlparse(href).query)
    assert logic.selection_from_url(vs) == {"words": ["the"], "units": [3]}


def test_two_models_side_by_side_join_matched_units(dash_app):
    values = {**{(k[0], k[1]): v for k, v in VIEW.items()}, (ids.PJ_MODEL_B, "value"): "tiny-lstm",
              (ids.PJ_LAYER_B, "value"): 0, (ids.PJ_SELECTION, "data"): {"words": [], "units": []}}
    out = dispatch(dash_app, "projection-summary.children", values)
    units = out[_key(ids.PJ_UNITS)]["figure"]
    sides = {cd[2] for t in _traces(units, "unit") for cd in t["customdata"]}
    lines = [t for t in units["data"] if t.get("mode") == "lines"]
    assert sides == {"a", "b"} and sum(t["x"].count(None) for t in lines) == 8      # 8 matched pairs
    assert "Hungarian" in json.dumps(out[ids.PJ_SUMMARY]["children"])
    # a lasso over model B's units selects their matched units of model A
    lasso = {"points": [{"customdata": ["unit", 0, "b"]}, {"customdata": ["unit", 1, "b"]}]}
    out = dispatch(dash_app, "projection-selection.data", {**values, (_key(ids.PJ_UNITS), "selectedData"): lasso},
                   (ids.PJ_UNITS, "selectedData"))
    _, _, _, _, root = dash_app
    from app.reader import Reader
    pairs = Reader(root).unit_pairs(("tiny-lstm", 1, "h"), ("tiny-lstm", 0, "h"))["pairs"]
    want = [int(pairs.set_index("unit_b").loc[b, "unit_a"]) for b in (0, 1)]
    assert out[ids.PJ_SELECTION]["data"]["units"] == want


def test_a_store_analysed_before_the_maps_says_to_re_analyse(dash_app, tmp_path):
    from analytics import store
    from app.reader import Reader

    _, _, _, _, root = dash_app
    copy = tmp_path / "store"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".staging"))
    src = store.table_file(copy, "models", "tiny-gru", "models")
    tables = sorted({p.name.split(".")[0] for p in src.parent.glob("*.parquet")} - {"projections"})
    with store.write_partition(copy, "models", "tiny-gru") as w:
        for t in tables:
            assert w.keep(t)
    words, units, summary = logic.map_view(Reader(copy), "tiny-gru", 0, "h", "tsne", 3, "pos", {}, "lasso")
    assert "rnnvis analyze tiny-gru" in json.dumps(summary.to_plotly_json(), default=str)


def test_selection_logic_and_url_round_trip():
    sel = logic.handle_selection("words-click", None, {"points": [{"customdata": ["word", "x", "a"]}]}, None, None,
                                 {"words": ["y"], "units": []})
    assert sel["words"] == ["x", "y"]
    sel = logic.handle_selection("words-click", None, {"points": [{"customdata": ["word", "x", "a"]}]}, None, None,
                                 sel)
    assert sel["words"] == ["y"]                                     # a second click removes it
    assert logic.handle_selection("words-select", None, None, None, None, sel)["words"] == []   # double-click
    vs = logic.view_state("m", 1, "h", 4, "pca", "cluster", {"words": list("abcde"), "units": [3, 1]})
    assert from_query(to_query(vs)) == vs and vs.words == ("a", "b", "c") and vs.map_words == tuple("abcde")
    assert vs.unit == 3 and vs.map_units == (3, 1)


def test_figures_are_plain_specs_with_customdata():
    import pandas as pd

    words = pd.DataFrame({"word": ["a", "b", "c"], "freq": [10, 100, 1000], "n": [1, 2, 3], "pos": ["DET", "", "X"],
                          "cluster": [0, 1, 1], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5]})
    fig = word_map_figure(words, "cluster", ["b"])
    sizes = [s for t in fig["data"] for s in t["marker"]["size"]]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]                 # size grows with frequency
    assert {cd[1] for t in fig["data"] for cd in t["customdata"]} == {"a", "b", "c"}
    units = pd.DataFrame({"unit": [0, 1, 2], "cluster": [0, 0, 1], "x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 1.0]})
    assert len(unit_map_figure(units)["data"]) == 2
    pairs = pd.DataFrame({"unit_a": [0, 1, 2], "unit_b": [2, 0, 1], "correlation": [0.9, -0.5, 0.1]})
    fig = paired_unit_figure(units, units, pairs, ("A", "B"), [0])
    lines = [t for t in fig["data"] if t.get("mode") == "lines"]
    assert len(lines) == 1 and lines[0]["x"].count(None) == 1          # only the selected unit's pair
    xs = [x for t in fig["data"] if t.get("customdata") and t["customdata"][0][2] == "b" for x in t["x"]]
    assert min(xs) > 1.0                                               # model B sits right of model A
