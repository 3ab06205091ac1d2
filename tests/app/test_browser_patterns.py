"""The Patterns page in headless Chromium: select a span in a passage, search, see the matches (planted store)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys

from tests.app.patterns_store import PLANTED, THETA, L, build_planted_store, planted_text
from tests.app.test_browser import (
    click_and_settle,
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
def server(tmp_path_factory):
    from analytics.settings import Settings
    from app.server import create_app

    root = build_planted_store(tmp_path_factory.mktemp("planted-browser") / "store")
    srv = serve_in_thread(create_app(Settings(store=root)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def _tokens(d):
    return d.find_elements(By.CSS_SELECTOR, "#patterns-tokens .pt-token")


def test_select_a_span_search_and_see_the_matches(server, driver):
    _, _, _, starts = planted_text()
    first = int(starts[1])
    driver.get(server + f"/patterns?model=planted&layer=0&state=h&theta={THETA}&at={first - 4}")
    wait(driver, lambda d: len(_tokens(d)) == 40, what="the passage's tokens")
    idle(driver)
    assert _tokens(driver)[3].text == "trigger"
    # click the first and the last token of the span, as a user does
    _tokens(driver)[4].click()
    wait(driver, lambda d: "click its last token" in d.find_element(By.ID, "patterns-span-text").text,
         what="the span started")
    idle(driver)
    _tokens(driver)[4 + L - 1].click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#patterns-tokens .pt-token.in-span")) == L,
         what="the span highlighted")
    # the proposal fills the unit picker (the URL follows): the planted units are among them
    url = wait(driver, lambda d: (lambda q: q if q.get("u") else None)(parse_qs(urlparse(d.current_url).query)),
               what="units proposed")
    assert {str(u) for u in PLANTED} <= set(url["u"]) and url["from"] == [str(first)] and url["len"] == [str(L)]
    # keep just the planted units: open the page at that deep link (as a colleague would), then search
    driver.get(server + f"/patterns?model=planted&layer=0&state=h&theta={THETA}&from={first}&len={L}"
               f"&at={first - 4}&ob=1" + "".join(f"&u={u}" for u in PLANTED))
    wait(driver, lambda d: len(_tokens(d)) == 40, what="the passage again")
    idle(driver)
    # the deep link alone runs the search; Search runs it again
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#patterns-match-list .pt-match"),
             what="the matches")
    click_and_settle(driver, driver.find_element(By.ID, "patterns-search"))
    items = texts(driver, "#patterns-match-list .pt-match")
    assert len(items) == min(30, len(starts))
    assert all("3/3 units" in i for i in items)
    marks = texts(driver, "#patterns-match-list mark")
    assert len(marks) == len(items) and all(len(m.split()) == L for m in marks)
    assert driver.find_element(By.ID, "patterns-count").text.startswith(f"{len(starts)} matches of 3 units")
    assert "trigger 100%" in driver.find_element(By.ID, "patterns-summary").text
    rows = js(driver, "Array.from(document.querySelectorAll('.dash-graph')).find(e => e.id.includes("
                      "'patterns-matches')).querySelector('.js-plotly-plot').data[0].y.length")
    assert rows == len(items)
    shot(driver, "patterns")


@pytest.fixture(scope="module")
def model_server(app_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=app_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def test_a_typed_sentence_traced_on_the_fly_gives_a_pattern(model_server, driver, app_store):
    """A real (tiny) model: type a sentence, trace it, select one token, search the corpus for its unit."""
    import numpy as np

    from app.reader import Reader

    text = "the cat sat on a red ball and she was good"
    tokens, values = Reader(app_store).sentence_states(Reader(app_store).add_sentence("tiny-lstm", text), 1, "h")
    drop = values[:-1] - values[1:]                                     # [T-1, H]: how far a unit falls next step
    i, u = np.unravel_index(int(np.argmax(drop)), drop.shape)
    theta = round(float(values[i, u] + values[i + 1, u]) / 2, 3)       # u is on at token i, off at i + 1
    driver.get(model_server + f"/patterns?model=tiny-lstm&layer=1&state=h&theta={theta}")
    wait(driver, lambda d: len(_tokens(d)) == 40, what="the corpus passage")
    idle(driver)
    driver.find_element(By.ID, "patterns-text").send_keys(text)
    driver.find_element(By.ID, "patterns-trace").click()
    wait(driver, lambda d: [t.text for t in _tokens(d)] == list(tokens), what="the typed sentence's tokens")
    idle(driver)
    _tokens(driver)[i].click()                                          # a one-token span: first and last
    # the first click re-renders the tokens: wait until it has (idle() alone can look before the request starts)
    wait(driver, lambda d: "click its last token" in d.find_element(By.ID, "patterns-span-text").text,
         what="the span started")
    idle(driver)
    _tokens(driver)[i].click()
    wait(driver, lambda d: str(u) in parse_qs(urlparse(d.current_url).query).get("u", []), what="unit proposed")
    q = parse_qs(urlparse(driver.current_url).query)
    assert q["len"] == ["1"] and q["s"] and "at" not in q
    idle(driver)
    driver.find_element(By.ID, "patterns-search").click()
    count = wait(driver, lambda d: (lambda t: t if "matches of" in t else None)(
        d.find_element(By.ID, "patterns-count").text), what="the search's answer")
    assert int(count.split()[0]) > 0, count
    assert driver.find_elements(By.CSS_SELECTOR, "#patterns-match-list .pt-match")
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]    # the matches drew (1 row too)
    for graph in ("patterns-passage", "patterns-matches"):                     # colour-bar ticks apart, in order
        boxes = js(driver, "Array.from(Array.from(document.querySelectorAll('.dash-graph')).find(e => e.id.includes("
                           f"'{graph}')).querySelectorAll('.colorbar .cbaxis text')).map(t => "
                           "t.getBoundingClientRect()).map(r => [r.top, r.bottom])")
        boxes = sorted(boxes)
        assert len(boxes) == 3, (graph, boxes)
        assert all(b[0] >= a[1] for a, b in zip(boxes, boxes[1:])), (graph, boxes)
    # switching to another typed sentence clears the old matches (they belong to the previous passage)
    driver.find_element(By.ID, "patterns-text").send_keys(Keys.CONTROL, "a")
    driver.find_element(By.ID, "patterns-text").send_keys("she was good")
    driver.find_element(By.ID, "patterns-trace").click()
    wait(driver, lambda d: [t.text for t in _tokens(d)][:3] == ["she", "was", "good"], what="the new sentence")
    idle(driver)
    assert driver.find_element(By.ID, "patterns-count").text.startswith("Sentence traced")
    assert not driver.find_elements(By.CSS_SELECTOR, "#patterns-match-list .pt-match")
    assert driver.find_element(By.ID, "patterns-summary").text == ""
    plot = ("Array.from(document.querySelectorAll('.dash-graph')).find(e => e.id.includes('patterns-matches'))"
            ".querySelector('.js-plotly-plot')")
    wait(driver, lambda d: "Select a span and units" in js(d, f"{plot}.layout.annotations[0].text"),
         what="the old matches' plot cleared")
    assert js(driver, f"{plot}.data.length") == 0
