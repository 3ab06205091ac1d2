"""Explore as a new user sees it (issue 25): the colour key and POS legend, sentence glyphs, the detail view,
the URL. Measured in headless Debian Chromium: element bounds, axis ranges, visible text."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By

from tests.app.test_browser import (
    _graph_js,
    click_and_settle,
    driver,  # noqa: F401 (the module-scoped Chromium fixture)
    idle,
    js,
    pick_word,
    serve_in_thread,
    texts,
    trace_len,
    wait,
)

pytestmark = pytest.mark.browser
CO = "explore-cocluster"


@pytest.fixture(scope="module")
def server(wide_store):
    from analytics.settings import Settings
    from app.server import create_app

    srv = serve_in_thread(create_app(Settings(store=wide_store)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def _open(d, url: str, units: int) -> None:
    d.get(url)
    wait(d, lambda d: trace_len(d, CO, "units") == units, what="memory cells")
    idle(d)


#: Bounds (px, page coordinates) of the co-cluster figure's parts: the whole figure, the plot area, the colour
#: bar, the POS legend and the memory cells.
BOUNDS_JS = f"""(() => {{ const gd = {_graph_js(CO)}; const r = e => e && e.getBoundingClientRect();
  const b = e => e && {{left: r(e).left, right: r(e).right, top: r(e).top, bottom: r(e).bottom}};
  const cells = Array.from(gd.querySelectorAll('.scatterlayer .trace')).map(t => t.querySelectorAll('path.point'));
  return {{fig: b(gd.querySelector('.main-svg')), plot: b(gd.querySelector('.nsewdrag')),
          bar: b(gd.querySelector('.colorbar')), legend: b(gd.querySelector('.legend')),
          legend_rows: new Set(Array.from(gd.querySelectorAll('.legend .traces'))
                                 .map(e => Math.round(r(e).top))).size,
          cells_left: Math.min(...Array.from(gd.querySelectorAll('.point')).map(e => r(e).left))}}; }})()"""


@pytest.mark.parametrize("model,units,ks", [("tiny-wide", 32, (2, 3, 5, 8)), ("tiny-lstm", 8, (2, 3, 5))])
def test_a_clicked_word_keeps_its_colour_key_on_the_canvas_and_the_legend_in_rows(server, driver, model, units, ks):
    for k in ks:
        _open(driver, f"{server}/explore?model={model}&layer=1&state=h&k={k}", units)
        plain = js(driver, BOUNDS_JS)
        word = js(driver, f"{_graph_js(CO)}.data.find(t => t.name === 'words').customdata[0][1]")
        _open(driver, f"{server}/explore?model={model}&layer=1&state=h&k={k}&w={word}", units)
        wait(driver, lambda d: js(d, f"!!{_graph_js(CO)}.querySelector('.colorbar')"), what="the colour bar")
        b = js(driver, BOUNDS_JS)
        fig, bar = b["fig"], b["bar"]
        assert fig["left"] <= bar["left"] and bar["right"] <= fig["right"], (k, b)        # on the canvas
        assert bar["right"] <= b["cells_left"] + 1, (k, b)                                 # clear of the chips
        for side in ("top", "left"):                                                       # chips stay put
            assert b["plot"][side] == pytest.approx(plain["plot"][side], abs=1), (k, side, plain, b)
        if plain["legend"]:
            assert b["legend_rows"] <= max(2, plain["legend_rows"]), (k, b)                # no 12-row column


def test_a_corrected_link_says_in_one_line_what_it_corrected(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=5&state=q&k=99", 8)
    note = " ".join(texts(driver, "#explore-alert .alert-info"))
    for phrase in ("layer 5 → 1", "state q → h", "k 99 → 5"):
        assert phrase in note, (phrase, note)
    assert len(texts(driver, "#explore-alert .alert")) == 1
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=1&state=h&k=3", 8)
    assert texts(driver, "#explore-alert .alert") == []                        # nothing corrected, nothing said


def _query(d) -> dict:
    return parse_qs(urlparse(d.current_url).query)


def test_the_url_holds_the_link_filter_stroke_clip_and_toggles(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=1&state=h&k=3&stroke=2.5&links=0-0.95&clip=-1.5"
                  "&opt=pos&opt=glyphs", 8)
    q = _query(driver)
    assert (q["stroke"], q["links"], q["clip"], q["opt"]) == (["2.5"], ["0-0.95"], ["-1.5"], ["pos", "glyphs"]), q
    ticked = js(driver, "Array.from(document.querySelectorAll('#explore-options input')).filter(i => i.checked)"
                        ".map(i => i.value)")
    assert ticked == ["pos", "glyphs"]
    widths = js(driver, f"{_graph_js(CO)}.data.filter(t => t.name === 'links').map(t => t.line.width)")
    assert widths and min(widths) >= 2.0                                       # drawn with the stroke asked for
    align = driver.find_element(By.CSS_SELECTOR, "#explore-options input[value='align']")
    click_and_settle(driver, align)
    wait(driver, lambda d: _query(d).get("opt") == ["pos", "align", "glyphs"], what="the toggle in the URL")
    assert _query(driver)["links"] == ["0-0.95"]


def test_a_gate_is_labelled_by_its_activation_not_an_update(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=0&state=f&k=3", 8)
    note = " ".join(texts(driver, "#explore-summary .state-note"))
    assert "mean |f| (the gate's activation)" in note and "activations of f" in note and "Δf" not in note, note
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=0&state=h&k=3", 8)
    assert "mean |Δh|" in " ".join(texts(driver, "#explore-summary .state-note"))


def _add_sentence(d, text: str) -> None:
    box = d.find_element(By.ID, "explore-sentence-text")
    box.clear()
    box.send_keys(text)
    click_and_settle(d, d.find_element(By.ID, "explore-sentence-add"))


def test_a_wrapped_sentence_has_one_contribution_scale(server, driver):
    _open(driver, f"{server}/explore?model=tiny-gru&k=3", 8)
    words = "the food was great and the staff was kind but the room was cold and the bed was bad so we left early " \
            "from there"                                                          # 24 tokens: two rows
    _add_sentence(driver, words)
    glyphs = _graph_js("explore-glyphs")
    axes = wait(driver, lambda d: js(d, f"[...new Set({glyphs}.data.filter(t => (t.name || '').startsWith('→'))"
                                        ".map(t => t.yaxis))]"), what="contribution rows")
    assert len(axes) == 2, axes
    ranges = [js(driver, f"{glyphs}._fullLayout['yaxis' + '{a[1:]}'].range") for a in axes]
    assert ranges[0] == pytest.approx(ranges[1]), ranges
    most = js(driver, f"Math.max(...{glyphs}.data.filter(t => (t.name || '').startsWith('→'))"
                      ".flatMap(t => t.y.map(Math.abs)))")
    assert ranges[0][1] == pytest.approx(1.1 * most, rel=1e-6)                   # the largest bar fits on it


def test_a_fourth_detail_word_is_refused_with_a_message_and_a_click_says_what_it_replaced(server, driver):
    from tests.app.test_browser import click_plot_point

    url = f"{server}/explore?model=tiny-lstm&layer=0&state=h&k=3"
    _open(driver, url, 8)
    words = js(driver, f"{_graph_js(CO)}.data.find(t => t.name === 'words').customdata.map(c => c[1])")
    three, fourth = words[1:4], words[4]
    _open(driver, url + "".join(f"&w={w}" for w in three), 8)
    pick_word(driver, fourth)
    msg = wait(driver, lambda d: " ".join(texts(d, "#explore-words-msg .alert")), what="the refusal")
    idle(driver)
    assert f"“{fourth}” not added" in msg, msg
    assert _query(driver)["w"] == three
    assert js(driver, f"{_graph_js('explore-detail')}.data.map(t => t.name)") == three
    click_plot_point(driver, CO, "words", 0)                                  # a click replaces the oldest ...
    wait(driver, lambda d: _query(d).get("w", [None])[0] == words[0], what="the clicked word first")
    idle(driver)
    assert _query(driver)["w"] == [words[0]] + three[:2]
    msg = " ".join(texts(driver, "#explore-words-msg .alert"))
    assert f"“{words[0]}” replaced the oldest, “{three[2]}”" in msg, msg      # ... and says so


def test_the_unit_carried_from_projection_is_outlined_and_its_detail_shown(server, driver):
    driver.get(f"{server}/projection?model=tiny-wide&layer=1&state=h&k=3&w=the&w=of&unit=2&u=5")
    link = wait(driver, lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, ".explore-link")
                                        if "unit 2" in e.text), None), what="the link into Explore")
    idle(driver)
    link.click()
    wait(driver, lambda d: "/explore" in d.current_url and trace_len(d, CO, "units") == 32, what="Explore")
    idle(driver)
    mode = js(driver, "Array.from(document.querySelectorAll('#explore-detail-mode input')).find(i => i.checked)?.value")
    assert mode == "unit"
    title = js(driver, f"{_graph_js('explore-detail')}._fullLayout.title.text")
    assert title.startswith("unit 2:"), title
    # the cell of unit 2 drawn with a dark outline, every other cell without
    outlined = js(driver, f"""(() => {{ const gd = {_graph_js(CO)};
        const i = gd.data.findIndex(t => t.name === 'units'); const t = gd.data[i];
        const paths = gd.querySelectorAll('.scatterlayer .trace')[i].querySelectorAll('path.point');
        return t.customdata.map((c, n) => [c[1], parseFloat(paths[n].style.strokeWidth)])
                .filter(([u, w]) => w > 2).map(([u]) => u); }})()""")
    assert outlined == [2], outlined


@pytest.fixture(scope="module")
def server64(tiny_store, tmp_path_factory, fixtures):
    """tiny_store plus ``tiny-64``: a 1×64 LSTM language model, h analysed (a layer of more than 40 units)."""
    import shutil

    from analytics.pipeline import AnalysisOptions, analyze_model
    from analytics.settings import Settings
    from app.server import create_app
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("store64") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    lm = load_corpus(str(fixtures / "ptb"))
    train_model("tiny-64", ModelConfig("lm", "lstm", 1, 64, 6), TrainConfig(epochs=1, batch_size=4, bptt=10), root,
                corpus=lm, show_progress=False)
    analyze_model("tiny-64", root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=4, gradient_k=5),
                  corpus=lm, show_progress=False)
    srv = serve_in_thread(create_app(Settings(store=root)))
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


def test_box_plots_of_64_units_label_every_fifth_unit_and_the_selected_one(server64, driver):
    from tests.app.test_browser_views import TICKS_OVERLAP_JS

    word = "the"
    driver.get(f"{server64}/explore?model=tiny-64&layer=0&state=h&k=3&w={word}&unit=37&detail=word")
    wait(driver, lambda d: trace_len(d, CO, "units") == 64, what="memory cells")
    idle(driver)
    detail = _graph_js("explore-detail")
    shown = wait(driver, lambda d: js(d, f"Array.from({detail}.querySelectorAll('.xtick text'))"
                                         ".map(e => e.textContent)"), what="unit labels")
    assert 13 <= len(shown) <= 14 and "u37" in shown, shown                   # every 5th of 64, and unit 37
    ticks = driver.execute_script(TICKS_OVERLAP_JS, driver.execute_script(f"return {detail}"))
    assert ticks["overlaps"] == [], ticks
    inside = js(driver, f"""(() => {{ const gd = {detail};
        const f = gd.querySelector('.main-svg').getBoundingClientRect();
        return Array.from(gd.querySelectorAll('.xtick text')).every(e => {{ const r = e.getBoundingClientRect();
            return r.bottom <= f.bottom && r.top >= f.top; }}); }})()""")
    assert inside                                                              # no label cut off at the bottom


#: The co-cluster figure's annotations beside the chips as drawn: [name, text, left, right, top, bottom].
NOTES_JS = f"""(() => {{ const gd = {_graph_js(CO)};
  return gd._fullLayout.annotations.map((a, i) => {{
    const r = gd.querySelector('.annotation[data-index="' + i + '"] .annotation-text-g').getBoundingClientRect();
    return [a.name || '', a.text, r.left, r.right, r.top, r.bottom]; }}); }})()"""


def test_glyphs_beside_the_chips_are_labelled_in_the_order_added_with_readable_tokens(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=1&state=h&k=3&opt=pos&opt=align&opt=glyphs", 8)
    sentences = ["the cat sat on the mat", "a dog ran to the park", "we ate the food at home"]
    for text in sentences:
        _add_sentence(driver, text)
    wait(driver, lambda d: len([n for n in js(d, NOTES_JS) if n[0] == "glyph-sentence"]) == 3, what="three blocks")
    idle(driver)
    notes = js(driver, NOTES_JS)
    labels = [n for n in notes if n[0] == "glyph-sentence"]
    assert [n[1] for n in labels] == ["<b>S1</b>", "<b>S2</b>", "<b>S3</b>"]
    assert labels[0][2] < labels[1][2] < labels[2][2]                          # in the order added, left to right
    tokens = [n for n in notes if n[0] == "glyph-token"]
    assert len(tokens) == len(" ".join(sentences).split())                    # every word, none left out
    assert not any("more words" in n[1] for n in notes)
    boxes = sorted(tokens, key=lambda n: n[2])
    clear = [i for i in range(1, len(boxes)) if boxes[i][2] < boxes[i - 1][2] + 6]   # starts at least 6 px apart
    assert clear == [], clear
    fig = js(driver, f"{_graph_js(CO)}.querySelector('.main-svg').getBoundingClientRect().top")
    assert all(n[4] >= fig for n in labels + tokens)                           # nothing cut off at the top
    assert all(lab[5] <= min(t[4] for t in tokens) + 1 for lab in labels)      # the labels above the tokens
    card = js(driver, f"{_graph_js('explore-glyphs')}.layout.annotations.map(a => a.text)")
    assert [t.split(" · ")[0] for t in card if t.startswith("S")] == ["S1", "S2", "S3"]   # numbered as in the card
    assert [t.split()[0] for t in texts(driver, "#explore-sentence-list li")] == ["S1", "S2", "S3"]


def test_the_camera_tooltip_names_the_format_it_saves(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=0&state=h&k=3", 8)
    tips = ("Array.from(document.querySelectorAll(\".modebar-btn[data-title^='Download plot']\"))"
            ".map(b => b.getAttribute('data-title'))")
    try:
        driver.find_element(By.CSS_SELECTOR, "#app-export-format input[value=svg]").click()
        wait(driver, lambda d: set(js(d, tips)) == {"Download plot as an SVG"}, what="the SVG tooltip")
        click_and_settle(driver, driver.find_element(By.CSS_SELECTOR, "#explore-options input[value='align']"))
        assert set(js(driver, tips)) == {"Download plot as an SVG"}             # a redrawn toolbar says it too
    finally:
        driver.find_element(By.CSS_SELECTOR, "#app-export-format input[value=png]").click()
    wait(driver, lambda d: set(js(d, tips)) == {"Download plot as a PNG"}, what="the PNG tooltip")


def test_unit_mode_bar_labels_are_readable_and_the_subtitle_clear_of_the_bars(server, driver):
    _open(driver, f"{server}/explore?model=tiny-wide&layer=1&state=h&k=3&unit=3", 32)
    detail = _graph_js("explore-detail")
    wait(driver, lambda d: js(d, f"{detail}.querySelectorAll('.bartext').length") > 5, what="labelled bars")
    m = js(driver, f"""(() => {{ const gd = {detail}; const r = e => e.getBoundingClientRect();
        return {{sizes: Array.from(gd.querySelectorAll('.bartext')).map(e => parseFloat(e.style.fontSize)),
                title: Math.max(...Array.from(gd.querySelectorAll('.gtitle, .gtitle-subtitle')).map(e => r(e).bottom)),
                plot: r(gd.querySelector('.nsewdrag')).top}}; }})()""")
    assert min(m["sizes"]) >= 10, m["sizes"]
    assert m["title"] <= m["plot"] - 8, m                                     # the subtitle clear of the first row


def test_labels_read_as_written(server, driver):
    _open(driver, f"{server}/explore?model=tiny-lstm&layer=1&state=h&k=5", 8)
    labels = texts(driver, ".panel .control > label")
    assert any("|e|" in t for t in labels) and not any("|E|" in t for t in labels), labels
    chips = js(driver, f"{_graph_js(CO)}.data.find(t => t.name === 'chips').text")
    clouds = js(driver, f"{_graph_js(CO)}.data.find(t => t.name === 'clouds').text")
    sizes = [int(t.split(" · ")[1].split()[0]) for t in chips + clouds]
    assert 1 in sizes, (chips, clouds)                                         # k = 5 over 8 units: a lone unit
    for t in chips + clouds:
        n, noun = t.split(" · ")[1].split()[:2]
        assert noun.rstrip("s") + ("" if n == "1" else "s") == noun, t         # 1 unit, 2 units, 1 word


def test_projection_says_what_it_corrected_in_a_link_too(server, driver):
    driver.get(f"{server}/projection?model=tiny-lstm&layer=9&state=f&map=umap&k=99")
    note = wait(driver, lambda d: " ".join(texts(d, "#projection-alert .alert-info")), what="the correction")
    for phrase in ("layer 9 → 1", "state f → h (layer 1 can show", "map 'umap' ignored", "k 99 → 20"):
        assert phrase in note, (phrase, note)


def test_compare_says_what_it_corrected_in_a_link_too(server, driver):
    driver.get(f"{server}/compare?model=tiny-lstm&layer=9&b=tiny-gru&layer_b=7&state=q")
    note = wait(driver, lambda d: " ".join(texts(d, "#compare-alert .alert-info")), what="the correction")
    for phrase in ("layer 9 → 1", "layer B 7 → 0", "state q → h"):
        assert phrase in note, (phrase, note)
    driver.get(f"{server}/compare?model=tiny-lstm&layer=1&b=tiny-gru&layer_b=0")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".matches-table tbody tr"), what="the view")
    assert texts(driver, "#compare-alert .alert-info") == []                    # nothing corrected, nothing said


def test_patterns_says_what_it_corrected_in_a_link_too(server, driver):
    driver.get(f"{server}/patterns?model=tiny-lstm&layer=0&state=h&theta=9&from=3&len=999")
    note = wait(driver, lambda d: " ".join(texts(d, "#patterns-alert .alert-info")), what="the correction")
    for phrase in ("theta 9 → 5", "len 999 → ", "layer 0, state h → 1, state h"):
        assert phrase in note, (phrase, note)
