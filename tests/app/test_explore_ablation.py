"""Explore's "does this chip matter?": the selected chip's stored ablation, in Chromium and through dispatch."""
from __future__ import annotations

import json
import shutil

import pytest

from analytics import store
from analytics.settings import Settings
from tests.app.dispatching import dispatch
from tests.app.test_browser import (  # skips w/o Chromium
    _graph_js,
    click_plot_point,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    serve_in_thread,
    wait,
)

URL = "/explore?model=tiny-lstm&layer=1&state=h&k=6"


@pytest.fixture(scope="module")
def ablated_store(tiny_store, tmp_path_factory, fixtures):
    """tiny_store with tiny-lstm analysed up to k = 6: its last layer's chips at k = 6 are ablated."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.corpora import load_corpus

    root = tmp_path_factory.mktemp("ablated") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    analyze_model("tiny-lstm", root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=6, gradient_k=0,
                                                     max_tokens=2000), corpus=load_corpus(str(fixtures / "ptb")),
                  show_progress=False)
    return root


def _stored(root, chip: int):
    with store.connect(root) as con:
        return store.query(con, "SELECT target_kind, target, delta_mean, z, p FROM ablations WHERE model_id = "
                                "'tiny-lstm' AND layer = 1 AND state = 'h' AND k = 6 AND cluster = ? AND mode = 'zero'",
                           [chip])


def test_the_selected_chip_shows_its_stored_ablation(ablated_store):
    from app import ids
    from app.server import create_app

    app = create_app(Settings(store=ablated_store))
    client = app.server.test_client()
    assert client.get("/_dash-dependencies").status_code == 200
    key = json.dumps(ids.EX_ABLATION, sort_keys=True, separators=(",", ":"))
    values = {ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 1, ids.EX_STATE: "h", ids.EX_K: 6}
    rows = _stored(ablated_store, 0)
    assert len(rows) > 1
    fig = dispatch(app, client, ids.EX_ABLATION, {**values, ids.EX_SELECTION: {"chip": 0}},
                   f"{ids.EX_SELECTION}.data")[(key, "figure")]
    effect = next(t for t in fig["data"] if t["name"] == "this chip")
    assert sorted(effect["x"]) == pytest.approx(sorted(rows["delta_mean"]))
    assert any(f"z {rows['z'].iloc[0]:+.2f}" in h for h in effect["hovertext"])
    nothing = dispatch(app, client, ids.EX_ABLATION, {**values, ids.EX_K: 5, ids.EX_SELECTION: {"chip": 0}},
                       f"{ids.EX_K}.value")[(key, "figure")]
    assert not nothing["data"] and "No ablation stored for H0" in nothing["layout"]["annotations"][0]["text"]


@pytest.mark.browser
def test_clicking_a_chip_label_shows_what_zeroing_it_does(ablated_store, driver):
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=ablated_store)))
    try:
        driver.get(f"http://127.0.0.1:{srv.effective_port}{URL}")
        wait(driver, lambda d: (js(d, f"{_graph_js('explore-cocluster')}?.data?.length") or 0) > 0, what="chips")
        idle(driver)
        click_plot_point(driver, "explore-cocluster", "chips", 0)
        graph = _graph_js("explore-ablation")
        wait(driver, lambda d: (js(d, f"{graph}?.data?.length") or 0) == 2, what="the ablation bars")
        idle(driver)
        assert js(driver, f"{graph}.querySelectorAll('.barlayer .point').length") >= 4     # bars and bands drawn
        chip = js(driver, f"{graph}.layout.title.text")
        assert chip.startswith("H") and "random sets" in chip
    finally:
        srv.close()


def test_the_server_refuses_a_viewer_s_test_and_queues_nothing(ablated_store, tmp_path):
    """"Test these units" sent by a signed-in viewer (a forged click: the page does not offer it)."""
    import re

    from app import ids
    from app.hosted.auth import UserStore
    from app.server import create_app
    from workers import records

    users = tmp_path / "users.json"
    UserStore(users).add("vic", "viewer-pass-1", "viewer")
    app = create_app(Settings(store=ablated_store, auth=True, secret_key="k" * 40, users_file=users,
                              cookie_secure=False))
    client = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "vic", "password": "viewer-pass-1", "csrf": token, "next": "/"})
    assert client.get("/_dash-dependencies").status_code == 200
    values = {ids.EX_ABLATE: 1, ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 1, ids.EX_STATE: "h", ids.EX_K: 6,
              ids.EX_SELECTION: {"chip": 0}}
    before = len(records.list_jobs(ablated_store))
    out = dispatch(app, client, ids.EX_ABLATE_MSG, values, f"{ids.EX_ABLATE}.n_clicks")
    assert "Only members and admins can" in str(out) and "vic (viewer)" in str(out)
    assert len(records.list_jobs(ablated_store)) == before
