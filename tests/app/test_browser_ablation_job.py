"""Explore's "Test these units" in headless Chromium: a click queues an ablation job that the embedded worker
runs, its progress line and then its result appear beside the chips; a signed-in viewer is refused.

The store is tiny-lstm analysed up to k = 6 (``ablated_store``); every wait is for something the page shows.
"""
from __future__ import annotations

from urllib.parse import urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402

from analytics import store
from analytics.settings import Settings
from tests.app.test_browser import (  # skips w/o Chromium
    _graph_js,
    click_plot_point,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    serve_in_thread,
    wait,
)
from tests.app.test_explore_ablation import ablated_store  # noqa: F401 (a fixture: its own copy per module)

pytestmark = pytest.mark.browser

URL = "/explore?model=tiny-lstm&layer=1&state=h&k=6"
ENV = {"RNNVIS_BROKER_POLL_S": "0.1", "RNNVIS_HEARTBEAT_S": "1", "RNNVIS_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}
GRAPH = _graph_js("explore-ablation")


def _msg(d) -> str:
    return d.find_element(By.ID, "explore-ablate-msg").text


def _open_chip(d, server: str) -> None:
    d.get(server + URL)
    wait(d, lambda d: (js(d, f"{_graph_js('explore-cocluster')}?.data?.length") or 0) > 0, what="chips")
    idle(d)
    click_plot_point(d, "explore-cocluster", "chips", 0)
    wait(d, lambda d: (js(d, f"{GRAPH}?.data?.length") or 0) == 2, what="the stored ablation of H0")
    idle(d)


@pytest.fixture(scope="module")
def open_server(ablated_store):  # noqa: F811
    """The dashboard in open mode (the local user may act) with its embedded worker, as `rnnvis serve` runs."""
    from app.server import create_app
    from workers.embedded import start_embedded_worker, stop_embedded_worker

    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        mp.delenv("RNNVIS_BROKER_URL", raising=False)
        settings = Settings(store=ablated_store, device="cpu")
        worker = start_embedded_worker(settings)
        srv = serve_in_thread(create_app(settings))
        try:
            yield f"http://127.0.0.1:{srv.effective_port}"
        finally:
            srv.close()
            stop_embedded_worker(worker)


def test_test_these_units_queues_a_job_and_draws_its_result(open_server, ablated_store, driver):  # noqa: F811
    d = driver
    _open_chip(d, open_server)
    stored_title = js(d, f"{GRAPH}.layout.title.text")
    assert stored_title.startswith("H0") and "tested by" not in stored_title
    d.find_element(By.ID, "explore-ablate").click()
    wait(d, lambda d: "Queued job" in _msg(d) or "Testing" in _msg(d) or "Done" in _msg(d), what="the job queued")
    job = wait(d, lambda d: (lambda t: t if "Done" in t else None)(_msg(d)), timeout=180, what="the job done")
    assert "job j" in job and "units of layer 1 h" in job, job
    wait(d, lambda d: "tested by local" in (js(d, f"{GRAPH}?.layout?.title?.text") or ""), what="the tested bars")
    idle(d)
    with store.connect(ablated_store) as con:
        rows = store.query(con, "SELECT target_kind, target, delta_mean FROM ablations WHERE model_id = 'tiny-lstm' "
                                "AND requested_by = 'local' AND layer = 1 AND state = 'h' AND k = 6 AND cluster = 0")
    assert len(rows) > 1
    effect = js(d, f"{GRAPH}.data.find(t => t.name === 'this chip').x")
    assert sorted(effect) == pytest.approx(sorted(rows["delta_mean"]))
    assert js(d, f"{GRAPH}.querySelectorAll('.barlayer .point').length") >= 2 * len(rows)   # bars and random bands
    # Another chip: the stored view again (the test was of H0's units).
    click_plot_point(d, "explore-cocluster", "chips", 1)
    wait(d, lambda d: (js(d, f"{GRAPH}?.layout?.title?.text") or "").startswith("H1"), what="H1's stored ablation")
    assert "tested by" not in js(d, f"{GRAPH}.layout.title.text")


@pytest.fixture(scope="module")
def hosted_server(ablated_store, tmp_path_factory):  # noqa: F811
    from app.hosted.auth import UserStore
    from app.server import create_app

    users_file = tmp_path_factory.mktemp("hosted-ablate") / "users.json"
    UserStore(users_file).add("vic", "viewer-pass-1", "viewer")
    srv = serve_in_thread(create_app(Settings(store=ablated_store, auth=True, secret_key="k" * 40,
                                              users_file=users_file, cookie_secure=False)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def test_a_viewer_sees_the_stored_ablation_and_is_not_offered_a_test(hosted_server, driver):  # noqa: F811
    d = driver
    d.get(hosted_server + URL)
    wait(d, lambda d: urlparse(d.current_url).path == "/login", what="the sign-in page")
    d.find_element(By.ID, "u").send_keys("vic")
    d.find_element(By.ID, "p").send_keys("viewer-pass-1")
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: urlparse(d.current_url).path == "/explore", what="back on Explore")
    _open_chip(d, hosted_server)                                  # the stored result: shown to a viewer too
    button = d.find_element(By.ID, "explore-ablate")
    assert not button.is_enabled()
    assert button.get_attribute("title") == "Only members and admins can test units; you are signed in as vic (viewer)."
    # (a forged click, sent without the page, is refused by the server: tests/app/test_explore_ablation.py)
