"""The POS probe tables in Chromium: one per language model on Models, two models side by side on Compare, each
accuracy with its controls; a model without gold tags says so."""
from __future__ import annotations

import pytest

from analytics import store
from tests.app.test_browser import (  # skips w/o Chromium
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    serve_in_thread,
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


def _expected(root, model_id: str) -> list[list[str]]:
    """The stored probes as the table shows them: layer, state, accuracy, control, selectivity, untrained, majority."""
    df = store.query(store.connect(root), "SELECT * FROM probes WHERE model_id = ? ORDER BY layer, state", [model_id])
    assert len(df) == 4                                   # 2 layers × (h, c)
    return [[str(r.layer), r.state, f"{100 * r.accuracy:.1f}%", f"{100 * r.control_accuracy:.1f}%",
             f"{100 * (r.accuracy - r.control_accuracy):+.1f}", f"{100 * r.untrained_accuracy:.1f}%",
             f"{100 * r.majority:.1f}%"] for r in df.itertuples()]


def _rows(driver, selector: str) -> list[list[str]]:
    return [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in driver.find_elements("css selector", selector)]


def test_models_page_shows_a_probe_table_per_language_model(server, driver, loss_store):
    driver.get(server + "/")
    wait(driver, lambda d: d.find_elements("css selector", "#probes-brown-a .probe-row"), what="brown-a's probes")
    idle(driver)
    for model in ("brown-a", "brown-b"):
        assert _rows(driver, f"#probes-{model} .probe-row") == _expected(loss_store[0], model)
        assert "split by sentence" in texts(driver, f"#probes-{model} .muted")[0]
    assert texts(driver, "#probes-tiny-lstm .probe-note") == ["no gold tags for this corpus"]
    assert not driver.find_elements("css selector", "#probes-tiny-gru")          # a classifier: no probe block
    heads = [th.get_attribute("title") for th in driver.find_elements("css selector", "#probes-brown-a th[title]")]
    assert any("control task" in h for h in heads) and any("initial" in h for h in heads)


def test_compare_shows_both_models_probes_side_by_side(server, driver, loss_store):
    driver.get(server + "/compare?model=brown-a&b=brown-b")
    wait(driver, lambda d: d.find_elements("css selector", "#compare-probes .probe-row"), what="the probe rows")
    idle(driver)
    a, b = _expected(loss_store[0], "brown-a"), _expected(loss_store[0], "brown-b")
    assert _rows(driver, "#compare-probes .probe-row") == [ra + rb[2:] for ra, rb in zip(a, b)]
    assert texts(driver, "#compare-probes .probe-side") == ["A: brown-a", "B: brown-b"]

    driver.get(server + "/compare?model=brown-a&b=tiny-lstm")
    wait(driver, lambda d: "B (tiny-lstm): no gold tags for this corpus" in " ".join(texts(d, "#compare-probes")),
         what="the no-gold-tags note")
    idle(driver)
    rows = _rows(driver, "#compare-probes .probe-row")
    assert [r[:7] for r in rows] == a and all(set(r[7:]) == {"—"} for r in rows)
