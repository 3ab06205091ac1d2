"""The views' rough edges (issue 10, section 3) in headless Debian Chromium, checked as a user sees them:
toolbars clear of legends and titles, readable dropdowns, Compare at 1366 px, the export format, deep links,
sentence glyphs.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.app.test_browser import (_graph_js, click_plot_point, idle, js, new_driver, serve_in_thread,  # noqa: F401
                                    trace_len, wait)

from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(app_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=app_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


@pytest.fixture(scope="module")
def driver():
    d = new_driver()
    yield d
    d.quit()


def test_models_page_answers_at_slash_models_too(server, driver):
    driver.get(server + "/models")
    rows = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".models-table tbody tr"), what="model rows")
    assert "tiny-lstm" in " ".join(r.text for r in rows)
    assert "404" not in driver.find_element(By.CSS_SELECTOR, ".content").text


def _mode(driver) -> str | None:
    return js(driver, "Array.from(document.querySelectorAll('#explore-detail-mode input')).find(i => i.checked)?.value")


def test_a_deep_link_keeps_the_unit_detail_mode(server, driver):
    driver.get(server + "/explore?model=tiny-lstm&layer=0&state=h&k=3")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="memory cells")
    idle(driver)
    click_plot_point(driver, "explore-cocluster", "words", 0)            # a word first ...
    wait(driver, lambda d: "w=" in d.current_url and _mode(d) == "word", what="word mode")
    idle(driver)
    click_plot_point(driver, "explore-cocluster", "units", 0)            # ... then a unit
    wait(driver, lambda d: "unit=" in d.current_url and _mode(d) == "unit", what="unit mode")
    idle(driver)
    link = driver.current_url
    q = parse_qs(urlparse(link).query)
    assert q["w"] and q["detail"] == ["unit"]
    driver.get("about:blank")
    driver.get(link)
    wait(driver, lambda d: _mode(d) == "unit", what="unit mode after reopening the link")
    wait(driver, lambda d: (js(d, f"{_graph_js('explore-detail')}.layout.title.text") or "").startswith(
        f"unit {q['unit'][0]}:"), what="the unit's top words")
