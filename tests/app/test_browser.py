"""The dashboard in headless Debian Chromium, used as a user would.

The app is served by waitress in a thread on a free port and driven with
selenium and the system chromedriver (``/usr/bin/chromedriver``). Assertions
read what plotly drew (the graph div's ``data`` and SVG nodes) and the page's
text. With ``RNNVIS_SCREENSHOTS=1`` the pages are also saved under
``docs/screenshots/`` (``bench/screenshots.py`` takes nicer ones on the demo store).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.app.serving import serve_in_thread  # noqa: F401 (imported from here by the other browser tests)

pytestmark = pytest.mark.browser

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1600,1300")

if not (shutil.which(CHROMEDRIVER) and shutil.which(CHROMIUM)):
    pytest.skip("needs Debian's chromium and chromium-driver (make browser)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

COCLUSTER = ".cocluster-graph .js-plotly-plot"


def _graph_js(name: str) -> str:
    """JS expression: the plotly div of the graph whose pattern id has this name."""
    return (f"Array.from(document.querySelectorAll('.dash-graph')).find(e => (e.id || '').includes('\"{name}\"'))"
            "?.querySelector('.js-plotly-plot')")


@pytest.fixture(scope="module")
def server(app_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=app_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def new_driver():
    """Headless Debian Chromium driven by the system chromedriver."""
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    return d


@pytest.fixture(scope="module")
def driver():
    d = new_driver()
    yield d
    d.quit()


def wait(driver, fn, timeout: float = 30, what: str = "condition"):
    """Poll fn(driver) until it returns a truthy value (a poll that raises counts as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn(driver)
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - e.g. the graph is not drawn yet (None > 0)
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))


def js(driver, expr: str):
    return driver.execute_script(f"try {{ return {expr}; }} catch (e) {{ return null; }}")


def trace_len(driver, graph: str, trace: str):
    return js(driver, f"{_graph_js(graph)}.data.find(t => t.name === '{trace}').customdata.length")


def idle(driver, timeout: float = 30) -> None:
    """Wait until Dash has no callback in flight."""
    wait(driver, lambda d: js(d, "document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0 "
                                 "&& !document.title.startsWith('Updating')"), timeout, "callbacks to finish")


def answered(driver) -> int:
    """How many callback requests the page has had answered (the browser's own resource timing)."""
    return js(driver, "performance.getEntriesByType('resource')"
                      ".filter(e => e.name.includes('/_dash-update-component')).length")


def click_and_settle(driver, element) -> None:
    """Click what starts a server callback, then wait until it has been answered and Dash is idle.

    idle() alone can look between the click and the request's start, and see the page before it.
    """
    before = answered(driver)
    element.click()
    wait(driver, lambda d: answered(d) > before, what="the click's callback to be answered")
    idle(driver)


def texts(driver, css: str) -> list[str]:
    """The text of every element that matches css, read in one go (no reference can go stale between reads)."""
    return js(driver, f"Array.from(document.querySelectorAll({css!r})).map(e => e.innerText)")


def painted(driver) -> None:
    """Wait until the browser has painted what the page holds now: two animation frames have passed."""
    driver.execute_async_script("const done = arguments[arguments.length - 1]; "
                                "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")


def shot(driver, name: str) -> None:
    if os.environ.get("RNNVIS_SCREENSHOTS") == "1":
        painted(driver)
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{name}.png"))


def pick_word(d, word: str) -> None:
    """Type ``word`` in Explore's word picker and pick it with Enter, as a user does."""
    d.find_element(By.ID, "explore-words").click()
    search = wait(d, lambda d: d.find_element(By.CSS_SELECTOR, ".dash-dropdown-content input[type=search]"),
                  what="the search box")
    search.send_keys(word)
    wait(d, lambda d: word in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")],
         what=f"{word!r} offered")
    search.send_keys(Keys.ENTER)
    search.send_keys(Keys.ESCAPE)


def click_plot_point(driver, graph: str, trace: str, index: int) -> None:
    """Move the mouse onto point ``index`` of ``trace`` and click, as a user would."""
    locate = f"""(() => {{ const gd = {_graph_js(graph)};
        const t = gd._fullData.find(t => t.name === '{trace}');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [r.left + xa.l2p(t.x[{index}]), r.top + ya.l2p(t.y[{index}])]; }})()"""
    # the page may still be drawing the graph (Dash's first callbacks may not have started when idle() looked)
    xy = wait(driver, lambda d: js(d, locate), what=f"point {index} of {trace} drawn")
    driver.execute_script("window.scrollBy(0, arguments[0])", xy[1] - 300)
    xy = js(driver, locate)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(xy[0]), int(xy[1]))
    actions.pointer_action.pause(0.3)
    actions.pointer_action.click()
    actions.perform()


def test_models_page_lists_models_and_links_into_explore(server, driver):
    driver.get(server + "/")
    # texts are read in one go, and elements found when they are used: none is held across a wait
    text = " ".join(wait(driver, lambda d: texts(d, ".models-table tbody tr"), what="model rows"))
    assert "tiny-lstm" in text and "tiny-gru" in text and "ppl" in text and "acc" in text
    wait(driver, lambda d: js(d, f"{_graph_js('models-curves')}.data.length") > 0, what="training curves")
    assert texts(driver, ".nav .nav-link")[:5] == ["Models", "Explore", "Projection", "Compare", "Patterns"]
    shot(driver, "models")
    driver.find_element(By.XPATH, "//table[contains(@class, 'models-table')]//tr[td[1][normalize-space() = "
                                  "'tiny-lstm']]//a[normalize-space() = 'Explore']").click()
    wait(driver, lambda d: urlparse(d.current_url).path == "/explore", what="Explore page")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="memory cells")
    assert parse_qs(urlparse(driver.current_url).query)["model"] == ["tiny-lstm"]


def test_explore_k_word_click_detail_and_shared_url(server, driver):
    driver.get(server + "/explore?model=tiny-lstm&layer=0&state=h&k=5")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "chips"), what="chips")
    idle(driver)
    chips_k5 = trace_len(driver, "explore-cocluster", "chips")
    assert chips_k5 == 5
    words_drawn = js(driver, "document.querySelectorAll('.cocluster-graph .textpoint').length")
    assert words_drawn > 5
    # change k with the keyboard on the slider: Home = the smallest k
    thumb = driver.find_element(By.CSS_SELECTOR, "#explore-k [role=slider]")
    thumb.send_keys(Keys.HOME)
    wait(driver, lambda d: "k=2" in d.current_url, what="k=2 in the URL")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "chips") <= 2, what="fewer chips")
    chips_k2 = trace_len(driver, "explore-cocluster", "chips")
    assert chips_k2 < chips_k5
    assert "k = 2" in driver.find_element(By.ID, "explore-summary").text
    idle(driver)
    # click a word in a cloud: the chips take its colours, the detail view shows its box plots
    word = js(driver, f"{_graph_js('explore-cocluster')}.data.find(t => t.name === 'words').customdata[0][1]")
    click_plot_point(driver, "explore-cocluster", "words", 0)
    wait(driver, lambda d: js(d, f"{_graph_js('explore-detail')}.data.filter(t => t.type === 'box')"
                                 ".map(t => t.name).join('|')") == word.replace("<", "&lt;").replace(">", "&gt;"),
         what=f"box plots of {word!r}")
    n_boxes = js(driver, f"{_graph_js('explore-detail')}.querySelectorAll('g.trace.boxes path.box').length")
    assert n_boxes == 8
    wait(driver, lambda d: js(d, f"{_graph_js('explore-cocluster')}.data.find(t => t.name === 'units')"
                                 ".marker.colorscale") == "RdBu_r", what="cells coloured by the word")
    idle(driver)
    shared = driver.current_url
    q = parse_qs(urlparse(shared).query)
    assert q["k"] == ["2"] and q["w"] == [word]
    # a colleague opens the link: same model, same k, same word in the detail view
    driver.get("about:blank")
    driver.get(shared)
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "chips") == chips_k2, what="same chips")
    wait(driver, lambda d: js(d, f"{_graph_js('explore-detail')}.data.filter(t => t.type === 'box').length") == 1,
         what="same detail view")
    assert driver.find_element(By.CSS_SELECTOR, "#explore-words").text.strip().startswith(word)


def test_add_two_sentences_and_see_their_glyphs(server, driver):
    driver.get(server + "/explore?model=tiny-gru&k=3")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="the GRU's cells")
    idle(driver)
    for text in ("I love the food though staff is not helpful", "The staff is not helpful though I love the food"):
        box = driver.find_element(By.ID, "explore-sentence-text")
        box.clear()
        box.send_keys(text)
        driver.find_element(By.ID, "explore-sentence-add").click()
        wait(driver, lambda d: text in (js(d, f"{_graph_js('explore-glyphs')}.layout.annotations"
                                              ".map(a => a.text).join('|')") or ""), what=f"glyphs of {text!r}")
    idle(driver)
    titles = js(driver, f"{_graph_js('explore-glyphs')}.layout.annotations.map(a => a.text)")
    assert sum("contribution" in t for t in titles) == 2          # the classifier's word contributions
    bars = js(driver, f"{_graph_js('explore-glyphs')}.querySelectorAll('g.trace.bars path').length")
    assert bars > 9 * 3 * 4
    listing = driver.find_element(By.ID, "explore-sentence-list").text
    assert "not in vocabulary" in listing and "p = " in listing
    assert len(parse_qs(urlparse(driver.current_url).query)["s"]) == 2
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    shot(driver, "explore-sentences")
    # an empty sentence: a message, no new glyphs
    driver.find_element(By.ID, "explore-sentence-text").clear()
    driver.find_element(By.ID, "explore-sentence-add").click()
    wait(driver, lambda d: "empty" in d.find_element(By.ID, "explore-sentence-msg").text, what="empty message")


def test_compare_two_models_shows_matched_units(server, driver):
    driver.get(server + "/compare?model=tiny-lstm&layer=0&b=tiny-lstm&layer_b=1")
    rows = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".matches-table tbody tr"), what="matched units")
    assert len(rows) == 8
    assert "matched unit pairs" in driver.find_element(By.ID, "compare-overlap").text
    for g in ("compare-cluster-a", "compare-cluster-b"):
        wait(driver, lambda d: trace_len(d, g, "units") == 8, what=f"{g} cells")
    wait(driver, lambda d: js(d, f"{_graph_js('compare-gradient')}.data.length") == 2, what="gradient flow")
    idle(driver)
    # clicking a unit in A outlines it and its match in B
    click_plot_point(driver, "compare-cluster-a", "units", 0)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".matches-table tr.selected"), what="selected pair")
    outlined = js(driver, f"{_graph_js('compare-cluster-b')}.data.find(t => t.name === 'units')"
                          ".marker.line.width.filter(w => w > 1).length")
    assert outlined == 1
    driver.execute_script("window.scrollTo(0, 0)")
    shot(driver, "compare")
    # two different models through the URL
    driver.get(server + "/compare?model=tiny-lstm&b=tiny-gru")
    wait(driver, lambda d: "tiny-gru L0" in (js(d, f"{_graph_js('compare-cluster-b')}.layout.title.text") or ""),
         what="model B's view")


def test_bad_urls_show_a_message_not_a_traceback(server, driver):
    driver.get(server + "/explore?model=ghost-model")
    alert = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-alert .alert"), what="alert")
    assert "unknown model 'ghost-model'" in alert[0].text and "tiny-lstm" in alert[0].text
    driver.get(server + "/explore?model=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    alert = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-alert .alert"), what="alert")
    assert "<img src=x onerror=alert(1)> is not a model id" in alert[0].text.replace("'", "")
    assert not driver.find_elements(By.CSS_SELECTOR, "#explore-alert img")
    assert "Traceback" not in driver.page_source


def test_explore_screenshot(server, driver):
    driver.get(server + "/explore?model=tiny-lstm&layer=1&state=h&k=3&w=the")
    wait(driver, lambda d: js(d, f"{_graph_js('explore-detail')}.data.filter(t => t.type === 'box').length") == 1,
         what="detail view")
    idle(driver)
    shot(driver, "explore")
