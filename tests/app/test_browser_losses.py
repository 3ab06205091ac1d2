"""Compare's "where A beats B" panel in Chromium: two language models, then a language model against a classifier."""
from __future__ import annotations

import pytest

from tests.app.test_browser import (  # skips w/o Chromium
    _graph_js,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    serve_in_thread,
    shot,
    texts,
    wait,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(loss_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=loss_store[0])))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def test_compare_panel_shows_where_one_model_beats_the_other(server, driver):
    driver.get(server + "/compare?model=brown-a&b=brown-b")
    tags = _graph_js("compare-loss-tags")
    wait(driver, lambda d: (js(d, f"{tags}?.data?.[0]?.y?.length") or 0) >= 5, what="the Δ loss bars")
    idle(driver)
    drawn = js(driver, f"{tags}.querySelectorAll('.barlayer .point').length")
    assert drawn == js(driver, f"{tags}.data[0].y.length")          # one drawn bar per tag
    assert "NOUN" in js(driver, f"{tags}.data[0].customdata")
    summary = texts(driver, "#compare-loss-summary")[0]
    assert "nats per token" in summary and "brown-a" in summary
    captions = texts(driver, "#compare-loss-tables caption")
    assert captions == ["where brown-a gains most", "where brown-b gains most"]
    words = _graph_js("compare-loss-words")
    assert js(driver, f"{words}.querySelectorAll('.scatterlayer .point').length") > 20
    driver.execute_script("document.querySelector('.cmp-losses').scrollIntoView()")
    shot(driver, "compare-losses")

    driver.get(server + "/compare?model=brown-a&b=tiny-gru")
    wait(driver, lambda d: "two language models, or two classifiers" in
         " ".join(texts(d, "#compare-loss-summary")), what="the mismatch message")
    # the message and the emptied figure come in one answer, but the graph (inside dcc.Loading) may not be
    # drawn again yet when the text is
    wait(driver, lambda d: js(d, f"{tags}?.data?.length") == 0, what="the Δ loss figure emptied")
