"""Unit pages in headless Debian Chromium: from a chip's cell in Explore to the unit's page, and the Find units box
(issue 22)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from analytics import store
from tests.app.test_browser import (
    click_plot_point,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    serve_in_thread,
    texts,
    wait,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(wide_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=wide_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def _stored(root, sql: str, params: list):
    return store.query(store.connect(root), sql, params)


def test_a_chip_cell_opens_the_units_page_with_its_top_contexts(server, driver, wide_store):
    driver.get(server + "/explore?model=tiny-wide&layer=1&state=h&k=4")
    idle(driver)
    click_plot_point(driver, "explore-cocluster", "units", 0)
    wait(driver, lambda d: "unit=" in d.current_url, what="a unit in Explore's URL")
    unit = int(parse_qs(urlparse(driver.current_url).query)["unit"][0])
    link = driver.find_element(By.ID, "explore-unit-link")
    wait(driver, lambda d: link.text == f"unit {unit}'s page →", what="the unit page link")
    link.click()
    wait(driver, lambda d: urlparse(d.current_url).path == "/unit", what="the unit page")
    q = parse_qs(urlparse(driver.current_url).query)
    assert (q["model"], q["layer"], q["state"], q["unit"]) == (["tiny-wide"], ["1"], ["h"], [str(unit)])
    wait(driver, lambda d: d.find_elements(By.ID, "unit-description"), what="the description")
    summ = _stored(wide_store, "SELECT description FROM unit_summaries WHERE model_id = 'tiny-wide' AND layer = 1 "
                               "AND state = 'h' AND unit = ?", [unit])
    assert driver.find_element(By.ID, "unit-description").text == summ["description"][0]
    # the 20 highest values, in rank order, centred on the stored positions' words
    top = _stored(wide_store, "SELECT u.value, c.word FROM unit_contexts u JOIN corpus_tokens c USING (model_id, "
                              "position) WHERE model_id = 'tiny-wide' AND layer = 1 AND state = 'h' AND unit = ? "
                              "AND kind = 'h_top' ORDER BY rank", [unit])
    assert len(top) == 20
    shown = texts(driver, "#unit-ctx-h_top .ctx-center")
    assert shown == list(top["word"])
    values = [float(v) for v in texts(driver, "#unit-ctx-h_top .ctx-value")]
    assert values == pytest.approx(list(top["value"]), abs=5e-4) and values == sorted(values, reverse=True)
    # its cluster links back to Explore with the unit selected
    driver.find_element(By.ID, "unit-explore-link").click()
    wait(driver, lambda d: urlparse(d.current_url).path == "/explore", what="Explore again")
    assert parse_qs(urlparse(driver.current_url).query)["unit"] == [str(unit)]


def test_find_units_by_word_tag_and_description(server, driver, wide_store):
    driver.get(server + "/unit?model=tiny-wide&layer=0&state=h&unit=0")
    wait(driver, lambda d: d.find_elements(By.ID, "unit-find-text"), what="the find box")
    box = driver.find_element(By.ID, "unit-find-text")
    box.send_keys("the", Keys.ENTER)
    wait(driver, lambda d: texts(d, "#unit-find-results .unit-link"), what="units for a word")
    want = _stored(wide_store, "SELECT layer, state, unit FROM word_responses WHERE model_id = 'tiny-wide' AND "
                               "word = 'the' ORDER BY mean DESC, layer, state, unit LIMIT 25", [])
    got = texts(driver, "#unit-find-results .unit-link")
    assert got == [f"L{r.layer} {r.state} #{r.unit}" for r in want.itertuples()]
    # a POS tag: the most NOUN-selective units, by z
    driver.find_element(By.CSS_SELECTOR, "#unit-find-mode input[value='tag']").click()
    box.clear()
    box.send_keys("NOUN", Keys.ENTER)
    want = _stored(wide_store, "SELECT layer, state, unit FROM unit_tags WHERE model_id = 'tiny-wide' AND tag = 'NOUN' "
                               "AND z IS NOT NULL ORDER BY z DESC, layer, state, unit LIMIT 25", [])
    wait(driver, lambda d: texts(d, "#unit-find-results .unit-link") == [f"L{r.layer} {r.state} #{r.unit}"
                                                                          for r in want.itertuples()],
         what="the NOUN-selective units")
    # a description term; a result opens that unit's page
    driver.find_element(By.CSS_SELECTOR, "#unit-find-mode input[value='text']").click()
    box.clear()
    box.send_keys("punctuation", Keys.ENTER)
    wait(driver, lambda d: texts(d, "#unit-find-results .unit-link") != [f"L{r.layer} {r.state} #{r.unit}"
                                                                          for r in want.itertuples()],
         what="units by description")
    lines = texts(driver, "#unit-find-results li")
    assert lines and all("punctuation" in line for line in lines)
    first = driver.find_element(By.CSS_SELECTOR, "#unit-find-results .unit-link")
    label = first.text
    first.click()
    wait(driver, lambda d: d.find_elements(By.TAG_NAME, "h2") and label.split()[-1].lstrip("#")
         in d.find_element(By.TAG_NAME, "h2").text, what="the found unit's page")
    assert "punctuation" in driver.find_element(By.ID, "unit-description").text
    # an unknown word says so
    box = driver.find_element(By.ID, "unit-find-text")
    driver.find_element(By.CSS_SELECTOR, "#unit-find-mode input[value='word']").click()
    box.send_keys("zzzqqq", Keys.ENTER)
    wait(driver, lambda d: "not in tiny-wide's vocabulary" in d.find_element(By.ID, "unit-find-results").text,
         what="the unknown-word line")
