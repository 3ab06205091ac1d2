"""The projection page in headless Debian Chromium: lasso words on the map, see them selected in Explore, and
come back with Explore's selection highlighted on the map (issue 13)."""
from __future__ import annotations

import html
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from tests.app.test_browser import (
    _graph_js,
    click_plot_point,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    painted,
    serve_in_thread,
    wait,
)

pytestmark = pytest.mark.browser

WORDS = _graph_js("projection-words")

#: A vertical cut through the widest gap between neighbouring words on the map (at least two words left of it,
#: in pixels), and the words left of it: the lasso below encloses exactly those.
CUT_JS = f"""(() => {{ const gd = {WORDS};
  const r = gd.querySelector('.nsewdrag').getBoundingClientRect(), xa = gd._fullLayout.xaxis;
  const pts = gd._fullData.filter(t => t.customdata && t.customdata[0][0] === 'word')
      .flatMap(t => t.x.map((x, i) => [r.left + xa.l2p(x), t.customdata[i][1]])).sort((a, b) => a[0] - b[0]);
  let best = 2;
  for (let i = 2; i < pts.length - 1; i++) if (pts[i][0] - pts[i - 1][0] > pts[best][0] - pts[best - 1][0]) best = i;
  return {{cut_px: (pts[best - 1][0] + pts[best][0]) / 2, gap: pts[best][0] - pts[best - 1][0], left: r.left + 3,
          top: r.top + 3, bottom: r.bottom - 3, words: pts.slice(0, best).map(p => p[1])}}; }})()"""

SELECTED_JS = f"""{WORDS}._fullData.filter(t => t.customdata && t.customdata[0][0] === 'word' && t.selectedpoints)
    .flatMap(t => t.selectedpoints.map(i => t.customdata[i][1]))"""


@pytest.fixture(scope="module")
def server(wide_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=wide_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def _lasso(driver, left: float, right: float, top: float, bottom: float) -> None:
    """Press, draw a closed lasso through the four corners in small steps, release (as a hand does)."""
    corners = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 1)]
    actions = ActionBuilder(driver)
    pointer = actions.pointer_action
    pointer.move_to_location(int(left), int(top))
    pointer.pointer_down()
    x0, y0 = left, top
    for x1, y1 in corners[1:]:
        for s in range(1, 9):
            pointer.move_to_location(int(x0 + (x1 - x0) * s / 8), int(y0 + (y1 - y0) * s / 8))
            pointer.pause(0.02)
        x0, y0 = x1, y1
    pointer.pointer_up()
    actions.perform()


def test_lasso_words_on_the_map_and_see_them_selected_in_explore(server, driver):
    driver.get(server + "/projection?model=tiny-wide&layer=1&state=h&k=4")
    wait(driver, lambda d: js(d, f"{WORDS}.data.length") > 0, what="the word map")
    idle(driver)
    assert js(driver, f"{WORDS}.layout.dragmode") == "lasso"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                          driver.find_element(By.CSS_SELECTOR, ".page-projection .card .js-plotly-plot"))
    painted(driver)                                                   # laid out where it was scrolled to
    cut = js(driver, CUT_JS)
    assert cut and len(cut["words"]) >= 2 and cut["gap"] >= 6, cut
    _lasso(driver, cut["left"], cut["cut_px"], cut["top"], cut["bottom"])
    wait(driver, lambda d: sorted(parse_qs(urlparse(d.current_url).query).get("w", [])) == sorted(cut["words"]),
         what=f"the lassoed words {cut['words']} in the URL")
    idle(driver)
    assert sorted(js(driver, SELECTED_JS)) == sorted(cut["words"])      # drawn selected (the others faded)
    picked = parse_qs(urlparse(driver.current_url).query)["w"]        # most frequent first
    link = driver.find_element(By.ID, "projection-explore-link")
    assert "in Explore" in link.text
    link.click()
    wait(driver, lambda d: urlparse(d.current_url).path == "/explore", what="Explore")
    wait(driver, lambda d: parse_qs(urlparse(d.current_url).query).get("w") == picked[:3], what="Explore's words")
    detail = _graph_js("explore-detail")
    wait(driver, lambda d: [html.unescape(t["name"]) for t in js(d, f"{detail}.data")] == picked[:3],
         what="the words' box plots")          # names are escaped for plotly (<eos> is among the most frequent)
    chips = _graph_js("explore-cocluster")
    wait(driver, lambda d: f"response to<br>{html.escape(picked[0])}" in str(js(d, f"{chips}.data.map(t => t.marker && "
                                                                     "t.marker.colorbar && t.marker.colorbar.title)")),
         what="chips coloured by the first word")
    # ... and back: Explore's selection (a unit clicked too) is highlighted on the map
    idle(driver)
    click_plot_point(driver, "explore-cocluster", "units", 0)
    wait(driver, lambda d: "unit=" in d.current_url, what="a unit in Explore's URL")
    unit = int(parse_qs(urlparse(driver.current_url).query)["unit"][0])
    idle(driver)
    driver.find_element(By.ID, "explore-map-link").click()
    wait(driver, lambda d: urlparse(d.current_url).path == "/projection", what="the map again")
    wait(driver, lambda d: sorted(js(d, SELECTED_JS) or []) == sorted(picked[:3]), what="Explore's words on the map")
    units = _graph_js("projection-units")
    wait(driver, lambda d: js(d, f"""{units}._fullData.filter(t => t.selectedpoints && t.selectedpoints.length)
        .flatMap(t => t.selectedpoints.map(i => t.customdata[i][1]))""") == [unit], what="Explore's unit on the map")


def test_click_a_unit_and_toggle_pca_tsne_and_compare(server, driver):
    driver.get(server + "/projection?model=tiny-wide&layer=1&state=h&k=4")
    units = _graph_js("projection-units")
    wait(driver, lambda d: js(d, f"{units}.data.length") > 0, what="the unit map")
    idle(driver)
    name = js(driver, f"{units}.data[0].name")
    first = js(driver, f"{units}.data[0].customdata[0][1]")
    click_plot_point(driver, "projection-units", name, 0)
    wait(driver, lambda d: parse_qs(urlparse(d.current_url).query).get("unit") == [str(first)], what="the unit")
    driver.find_element(By.CSS_SELECTOR, "#projection-method input[value='pca']").click()
    wait(driver, lambda d: "map=pca" in d.current_url and "PCA" in d.find_element(By.ID, "projection-summary").text,
         what="the PCA map")
    driver.get(server + "/projection?model=tiny-wide&layer=1&state=h&k=4&b=tiny-lstm&layer_b=1")
    wait(driver, lambda d: js(d, f"{units}.data.filter(t => t.mode === 'lines').length") > 0,
         what="matched units joined")
    assert "Hungarian" in driver.find_element(By.ID, "projection-summary").text


def _label_boxes(driver, graph: str) -> list[list[float]]:
    return js(driver, f"Array.from({_graph_js(graph)}.querySelectorAll('.textpoint text')).filter(t => t.textContent)"
                      ".map(t => t.getBoundingClientRect()).map(r => [r.left, r.right, r.top, r.bottom])")


def _overlapping(boxes) -> list:
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[0] < b[1] - 1 and b[0] < a[1] - 1 and a[2] < b[3] - 1 and b[2] < a[3] - 1]


def test_map_labels_do_not_overlap_and_side_by_side_links_only_the_strongest(server, driver):
    units = _graph_js("projection-units")
    for method in ("tsne", "pca"):                  # PCA's layer 1 map piled 22 word labels into 29 overlaps
        driver.get(server + f"/projection?model=tiny-wide&layer=1&state=h&k=4&map={method}")
        wait(driver, lambda d: js(d, f"{units}.data.length") > 0, what="the unit map")
        idle(driver)
        for graph in ("projection-words", "projection-units"):
            boxes = _label_boxes(driver, graph)
            assert len(boxes) >= 8, (method, graph, len(boxes))                     # still labelled
            assert not _overlapping(boxes), (method, graph, _overlapping(boxes)[:3])
    # side by side (32 units each): only the strongest 16 matched pairs are joined until units are selected
    driver.get(server + "/projection?model=tiny-wide&layer=1&state=h&k=4&b=tiny-wide&layer_b=0")
    wait(driver, lambda d: js(d, f"{units}.data.filter(t => t.mode === 'lines').length") > 0, what="the links")
    idle(driver)
    links = js(driver, f"{units}.data.filter(t => t.mode === 'lines').map(t => t.x.length / 3)")
    assert sum(links) == 16, links
    assert "strongest 16 of 32" in js(driver, f"{units}.layout.title.text")
    assert not _overlapping(_label_boxes(driver, "projection-units"))
