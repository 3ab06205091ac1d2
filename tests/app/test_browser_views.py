"""The views' rough edges (issue 10, section 3) in headless Debian Chromium, checked as a user sees them:
toolbars clear of legends and titles, readable dropdowns, Compare at 1366 px, the export format, deep links,
sentence glyphs.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By  # noqa: E402

from tests.app.test_browser import (  # noqa: F401
    _graph_js,
    click_plot_point,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    new_driver,
    pick_word,
    serve_in_thread,
    trace_len,
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


OVERLAPS_JS = """
const inter = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                      * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
const out = [];
for (const gd of document.querySelectorAll('.js-plotly-plot')) {
  const mb = gd.querySelector('.modebar');
  if (!mb) { out.push([gd.parentElement.id, 'no toolbar']); continue; }
  const m = mb.getBoundingClientRect();
  for (const t of gd.querySelectorAll('.legend .bg, .gtitle, .annotation, .colorbar')) {
    if (inter(m, t.getBoundingClientRect()) > 0) out.push([gd.parentElement.id, t.getAttribute('class'),
                                                         (t.textContent || '').slice(0, 40)]);
  }
}
return out;
"""


@pytest.mark.parametrize("width", [1366, 1600])
def test_figure_toolbars_cover_no_legend_or_title(server, width):
    d = new_driver()
    try:
        d.set_window_size(width, 1000)
        pages = {"/": "models-curves",
                 "/explore?model=tiny-lstm&layer=1&k=3&w=the": "explore-detail",
                 "/explore?model=tiny-lstm&layer=0&k=3&unit=2": "explore-detail",
                 "/compare?model=tiny-lstm&layer=0&b=tiny-lstm&layer_b=1&w=the": "compare-gradient"}
        for url, last in pages.items():
            d.get(server + url)
            wait(d, lambda d: js(d, f"{_graph_js(last)}.data.length") > 0, what=f"{last} on {url}")
            idle(d)
            n = js(d, "document.querySelectorAll('.js-plotly-plot').length")
            assert n >= (1 if url == "/" else 2)
            assert d.execute_script(OVERLAPS_JS) == [], url
        # the POS legend of Explore (a tagged corpus: NOUN, VERB, ..., DET, ADP, NUM) sits left of the toolbar
        d.get(server + "/explore?model=tiny-wide&layer=1&k=6")
        wait(d, lambda d: js(d, f"{_graph_js('explore-cocluster')}.querySelectorAll('.legend .traces').length") > 5,
             what="POS legend")
        idle(d)
        assert d.execute_script(OVERLAPS_JS) == []
    finally:
        d.quit()


SIDE_BY_SIDE_JS = """
const cs = Array.from(document.querySelectorAll('.card')).filter(c => c.querySelector('[id*="compare-cluster-"]'));
const r = cs.map(c => c.getBoundingClientRect());
const inside = cs.every((c, i) => Array.from(c.querySelectorAll('.main-svg')).every(s => {
    const b = s.getBoundingClientRect(); return b.left >= r[i].left && b.right <= r[i].right; }));
return r[0].top === r[1].top && Math.abs(r[0].width - r[1].width) <= 1 && inside;
"""


def test_compare_at_1366_px_keeps_each_word_cloud_inside_its_card(server):
    d = new_driver()
    try:
        d.set_window_size(1366, 900)
        d.get(server + "/compare?model=tiny-wide&b=tiny-lstm&k=2")     # k = 2: a chip of 16+ units, 6+ columns
        for g, n in (("compare-cluster-a", 32), ("compare-cluster-b", 8)):
            wait(d, lambda d: trace_len(d, g, "units") == n, what=f"{g} cells")
        idle(d)
        cards = d.execute_script("""return Array.from(document.querySelectorAll('.card'))
            .filter(c => c.querySelector('[id*="compare-cluster-"]')).map(c => {
            const r = c.getBoundingClientRect(), s = c.querySelector('.main-svg').getBoundingClientRect();
            return {left: r.left, right: r.right, svgLeft: s.left, svgRight: s.right,
                    scroll: c.scrollWidth - c.clientWidth}; })""")
        assert len(cards) == 2
        for c in cards:
            assert c["scroll"] <= 1 and c["left"] <= c["svgLeft"] and c["svgRight"] <= c["right"], c
        # At 1920 px the two views fit side by side, as equal halves, and every plot (the detail box plots were
        # drawn at the stacked width) is redrawn inside its card: a plot's width must never set its card's.
        d.set_window_size(1920, 900)
        wait(d, lambda d: d.execute_script(SIDE_BY_SIDE_JS), what="side by side, each plot inside its card")
    finally:
        d.quit()


MENU_JS = """
const c = document.querySelector('.dash-dropdown-content');
const list = c.querySelector('.dash-dropdown-options'), search = c.querySelector('.dash-dropdown-search-container');
const lr = list.getBoundingClientRect(), cr = c.getBoundingClientRect(), sr = search.getBoundingClientRect();
const opts = Array.from(c.querySelectorAll('.dash-dropdown-option'));
const shown = opts.filter(o => { const r = o.getBoundingClientRect();
                                 return r.top >= lr.top - 1 && r.bottom <= lr.bottom + 1; });
const covered = shown.filter(o => { const r = o.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + 12, (r.top + r.bottom) / 2); return !o.contains(hit); });
const st = getComputedStyle(opts[0]);
return {shown: shown.length, covered: covered.map(o => o.textContent), transform: st.textTransform,
        weight: parseInt(st.fontWeight), hscroll: c.scrollWidth - c.clientWidth,
        inView: cr.left >= 0 && cr.right <= window.innerWidth && cr.top >= 0 && cr.bottom <= window.innerHeight,
        clipped: opts.filter(o => o.getBoundingClientRect().right > cr.right + 1).length,
        searchAbove: sr.bottom <= lr.top + 1};
"""


def _open_menu(d, dropdown_id: str) -> dict:
    box = d.find_element(By.ID, dropdown_id)
    # As a user would, with the box on screen: options outside the viewport cannot be hit-tested
    # (elementFromPoint), and where the menu lands depends on how far the page has scrolled.
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    box.click()
    wait(d, lambda d: js(d, "document.querySelectorAll('.dash-dropdown-content .dash-dropdown-option').length"),
         what=f"{dropdown_id} menu")
    # The menu opens with an animation and is placed against the box, which a late layout change (a figure
    # drawn below) can move: measure it once it has come to rest, i.e. the same place in two polls.
    rect = "JSON.stringify(document.querySelector('.dash-dropdown-content').getBoundingClientRect())"
    last: list = [None]

    def at_rest(d) -> bool:
        now = js(d, rect)
        rest, last[0] = now is not None and now == last[0], now
        return rest

    wait(d, at_rest, what=f"{dropdown_id} menu at rest")
    return d.execute_script(MENU_JS)


def test_side_panel_dropdowns_show_readable_options_clear_of_the_search_box(server):
    d = new_driver()
    try:
        d.set_window_size(1366, 900)
        d.get(server + "/explore?model=tiny-wide&layer=1&state=f&k=3")
        wait(d, lambda d: trace_len(d, "explore-cocluster", "units") == 32, what="cells")
        idle(d)
        # the state's full label shows in its box
        value = d.find_element(By.CSS_SELECTOR, "#explore-state .dash-dropdown-value")
        assert value.text == "f (forget gate)"
        assert d.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", value)
        menu = _open_menu(d, "explore-state")       # h, c, i, f, g, o: all of them, in plain text
        assert menu["shown"] == 6 and menu["covered"] == [] and menu["searchAbove"], menu
        assert menu["transform"] == "none" and menu["weight"] <= 400, menu
        assert menu["inView"] and menu["hscroll"] <= 0 and menu["clipped"] == 0, menu
        d.find_element(By.TAG_NAME, "body").send_keys("\ue00c")   # Escape
        # Compare's word list: a long menu, scrolled; no option hides under the search box
        d.get(server + "/compare?model=tiny-wide&b=tiny-lstm")
        wait(d, lambda d: trace_len(d, "compare-cluster-a", "units") == 32, what="cells")
        idle(d)
        menu = _open_menu(d, "compare-word")
        assert menu["shown"] >= 8 and menu["covered"] == [] and menu["searchAbove"], menu
        d.execute_script("document.querySelector('.dash-dropdown-content .dash-dropdown-options').scrollTop = 95")
        menu = d.execute_script(MENU_JS)
        assert menu["shown"] >= 8 and menu["covered"] == [], menu
    finally:
        d.quit()


def _download_plot(d, graph: str, folder, stem: str) -> str:
    """Hover the graph and click its toolbar's camera, as a user does; the name of the file that arrives."""
    from selenium.webdriver.common.action_chains import ActionChains

    box = d.find_element(By.CSS_SELECTOR, f"[id*='\"{graph}\"'] .js-plotly-plot")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    ActionChains(d).move_to_element(box).pause(0.3).perform()
    btn = box.find_element(By.CSS_SELECTOR, ".modebar-btn[data-title^='Download plot']")
    ActionChains(d).move_to_element(btn).pause(0.2).click().perform()
    got = wait(d, lambda d: [p.name for p in folder.iterdir() if p.name.startswith(stem) and
                             not p.name.endswith(".crdownload")], timeout=30, what=f"download of {stem}")
    return got[0]


def test_the_export_format_applies_at_once_persists_and_reaches_every_figure(server, tmp_path):
    d = new_driver()
    try:
        d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
        d.get(server + "/explore?model=tiny-lstm&layer=0&k=3&w=the")
        wait(d, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="cells")
        wait(d, lambda d: js(d, f"{_graph_js('explore-detail')}.data.length") == 1, what="detail")
        idle(d)
        d.find_element(By.CSS_SELECTOR, "#app-export-format input[value=svg]").click()
        # no redraw in between: the next click on a camera saves SVG
        assert _download_plot(d, "explore-cocluster", tmp_path, "rnnvis-explore-cocluster") == \
            "rnnvis-explore-cocluster.svg"
        assert (tmp_path / "rnnvis-explore-cocluster.svg").read_text()[:200].lstrip().startswith("<svg")
        # the choice survives a reload, and other pages' figures follow it
        d.get(server + "/compare?model=tiny-lstm&layer=0&b=tiny-lstm&layer_b=1")
        wait(d, lambda d: trace_len(d, "compare-cluster-a", "units") == 8, what="cells")
        idle(d)
        assert d.find_element(By.CSS_SELECTOR, "#app-export-format input[value=svg]").is_selected()
        assert _download_plot(d, "compare-cluster-b", tmp_path, "rnnvis-compare-cluster-b").endswith(".svg")
        formats = ("Array.from(document.querySelectorAll('.js-plotly-plot'))"
                   ".map(g => g._context && g._context.toImageButtonOptions.format)")
        assert set(js(d, formats)) == {"svg"}
        d.get(server + "/jobs")                      # the training curve too (drawn once a job is picked)
        wait(d, lambda d: js(d, formats) == ["svg"], what="the Jobs curve exporting SVG")
        d.find_element(By.CSS_SELECTOR, "#app-export-format input[value=png]").click()
        wait(d, lambda d: js(d, formats) == ["png"], what="back to PNG")
    finally:
        d.quit()


def test_a_user_picks_a_word_outside_the_clusters_by_typing_it(server, driver, wide_store):
    from app.reader import Reader

    r = Reader(wide_store)
    clustered = set(r.clusters("tiny-lstm", 0, "h", 3).words["word"])
    rare = next(w for w in r.vocab("tiny-lstm").sort_values("freq")["word"]
                if w not in clustered and w.isalpha() and len(w) > 3)
    driver.get(server + "/explore?model=tiny-lstm&layer=0&state=h&k=3")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="cells")
    idle(driver)
    pick_word(driver, rare)
    wait(driver, lambda d: js(d, f"{_graph_js('explore-detail')}.data.map(t => t.name).join('|')") == rare,
         what=f"box plots of {rare!r}")
    idle(driver)
    assert parse_qs(urlparse(driver.current_url).query)["w"] == [rare]
    assert rare in driver.find_element(By.ID, "explore-words").text


TICKS_OVERLAP_JS = """
const gd = arguments[0], out = {axes: 0, most: 0, overlaps: []};
for (const ax of Object.keys(gd._fullLayout).filter(k => /^xaxis\\d*$/.test(k)).map(k => gd._fullLayout[k])) {
  const rects = Array.from(gd.querySelectorAll(`g.${ax._id}tick text`)).map(t => t.getBoundingClientRect())
                     .sort((a, b) => a.left - b.left);
  if (!rects.length) continue;
  out.axes += 1; out.most = Math.max(out.most, rects.length);
  for (let i = 1; i < rects.length; i++) if (rects[i].left < rects[i - 1].right - 0.5) out.overlaps.push([ax._id, i]);
}
return out;
"""


def _add_sentence(d, text: str) -> None:
    box = d.find_element(By.ID, "explore-sentence-text")
    box.clear()
    box.send_keys(text)
    d.find_element(By.ID, "explore-sentence-add").click()


def test_long_sentences_wrap_and_predictions_read_right(server, driver):
    long = " ".join(["the cat sat on the mat and the dog ran"] * 5)          # 50 tokens
    driver.get(server + "/explore?model=tiny-lstm&layer=0&state=h&k=3")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="cells")
    idle(driver)
    _add_sentence(driver, long)
    wait(driver, lambda d: "continued" in (js(d, f"{_graph_js('explore-glyphs')}.layout.annotations"
                                                 ".map(a => a.text).join('|')") or ""), what="wrapped glyph rows")
    idle(driver)
    ticks = driver.execute_script(TICKS_OVERLAP_JS, driver.execute_script(f"return {_graph_js('explore-glyphs')}"))
    assert ticks["axes"] == 3 and ticks["most"] <= 20 and ticks["overlaps"] == [], ticks
    listing = driver.find_element(By.ID, "explore-sentence-list").text
    assert "next word “" in listing                                          # a language model's prediction
    # a classifier's negative verdict in red, a positive one in green
    driver.get(server + "/explore?model=tiny-gru&k=3")
    wait(driver, lambda d: trace_len(d, "explore-cocluster", "units") == 8, what="the GRU's cells")
    idle(driver)
    _add_sentence(driver, "terrible awful bad food")
    pred = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#explore-sentence-list .prediction"),
                what="the prediction")[0]
    colour = pred.value_of_css_property("color")
    label = pred.text.split("→")[1].split("(")[0].strip()
    assert colour == {"negative": "rgba(198, 40, 40, 1)", "positive": "rgba(46, 125, 50, 1)"}[label], (label, colour)
