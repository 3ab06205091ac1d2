"""Callback logic called as plain functions on a small real store (no browser, no HTTP)."""
from __future__ import annotations

import json

import dash
import pytest
from dash import html

from app.logic import compare, explore, explore_url, models
from app.reader import Reader
from app.urlstate import from_query


@pytest.fixture(scope="module")
def reader(app_store):
    return Reader(app_store)


def _text(component) -> str:
    """All the text inside a Dash component tree."""
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def _trace(fig, name):
    return next(t for t in fig["data"] if t.get("name") == name)


def _n_chips(fig) -> int:
    return len(_trace(fig, "chips")["customdata"])


# -- models page


def test_models_table_lists_every_model_with_scores_and_links(reader):
    table, options, picked = models.models_page(reader)
    text = _text(table)
    assert "tiny-lstm" in text and "tiny-gru" in text
    assert "ppl " in text and "acc " in text
    assert "/explore?model=tiny-lstm" in text and "/compare?model=tiny-lstm" in text
    assert picked == ["tiny-gru", "tiny-lstm"]
    fig = models.curves(reader, picked)
    assert {t["legendgroup"] for t in fig["data"]} == {"tiny-gru", "tiny-lstm"}


# -- explore


def test_model_switch_picks_a_valid_layer_and_state(reader):
    layers, layer, states, state, kmax, clip, alert = explore.controls_for_model(reader, "tiny-gru", 1, "c")
    assert (layer, state) == (0, "h")                  # the GRU has one layer and no cell state
    assert [o["value"] for o in states] == ["h", "z", "r", "n"]
    assert kmax == 5 and alert == [] and -3 <= clip <= 0.5
    _, layer, _, state, *_ = explore.controls_for_model(reader, "tiny-lstm", 0, "c")
    assert (layer, state) == (0, "c")


def test_unknown_model_gives_an_alert_listing_known_models(reader):
    *_, alert = explore.controls_for_model(reader, "no-such-model", None, None)
    text = _text(alert)
    assert "unknown model" in text and "tiny-lstm" in text and "Traceback" not in text
    fig, summary = explore.cluster_view(reader, "no-such-model", 0, "h", 3)
    assert "unknown model" in _text(summary)


def test_changing_k_changes_the_number_of_chips(reader):
    f2, s2 = explore.cluster_view(reader, "tiny-lstm", 0, "h", 2)
    f5, s5 = explore.cluster_view(reader, "tiny-lstm", 0, "h", 5)
    opts = explore.word_options(reader, "tiny-lstm", 0, "h", 5, None)
    view = reader.clusters("tiny-lstm", 0, "h", 5)
    assert _n_chips(f2) == 2 and _n_chips(f5) == 5 == view.units["cluster"].nunique()
    assert "k = 5" in _text(s5)
    assert {o["value"] for o in opts} == set(view.words["word"])


def test_clicking_a_word_selects_it_and_colours_the_chips(reader):
    click = {"points": [{"customdata": ["word", "the", 1]}]}
    words, sel, mode = explore.handle_click(click, ["cat"], {})
    assert words == ["the", "cat"] and mode == "word"
    fig, _ = explore.cluster_view(reader, "tiny-lstm", 0, "h", 3, words=words)
    cells = _trace(fig, "units")
    assert "response to the" in cells["hovertext"][0]
    detail, msg = explore.detail_view(reader, "tiny-lstm", 0, "h", words, "word", sel)
    boxes = [t for t in detail["data"] if t["type"] == "box"]
    assert [b["name"] for b in boxes] == ["the", "cat"] and len(boxes[0]["x"]) == 8


def test_clicking_a_cell_selects_its_unit_and_chip(reader):
    words, sel, mode = explore.handle_click({"points": [{"customdata": ["unit", 3, 1]}]}, [], {})
    assert sel == {"chip": 1, "unit": 3} and mode == "unit"
    fig, _ = explore.detail_view(reader, "tiny-lstm", 0, "h", [], "unit", sel)
    assert fig["data"][0]["orientation"] == "h"
    # clicking a cloud label toggles the cloud selection
    _, sel, _ = explore.handle_click({"points": [{"customdata": ["cloud", 2]}]}, [], {})
    assert sel == {"cloud": 2}
    _, sel, _ = explore.handle_click({"points": [{"customdata": ["cloud", 2]}]}, [], sel)
    assert sel == {}
    assert explore.handle_click(None, ["a"], {"chip": 1})[:2] == (["a"], {"chip": 1})


def test_unknown_words_are_reported_in_the_detail_view(reader):
    fig, msg = explore.detail_view(reader, "tiny-lstm", 0, "h", ["zzzunknown"], "word", {})
    assert "Not in tiny-lstm" in _text(msg)


def test_adding_sentences_shows_glyphs_and_classifier_contributions(reader):
    ids, msg, text = explore.add_sentence(reader, "tiny-gru", "I love the food though staff is not helpful", [])
    ids, msg, text = explore.add_sentence(reader, "tiny-gru", "The staff is not helpful though I love the food", ids)
    assert len(ids) == 2 and msg == "" and text == ""
    fig, listing = explore.glyph_view(reader, "tiny-gru", 0, "h", 3, ids)
    panels = [a["text"] for a in fig["layout"]["annotations"]]
    assert any("I love the food" in p for p in panels) and any("The staff is not" in p for p in panels)
    assert sum("contribution" in p for p in panels) == 2
    assert "not in vocabulary" in _text(listing)
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert ticks[0].startswith("&lt;unk&gt;")     # "I" is out of the tiny vocabulary


def test_bad_sentences_give_a_message_and_keep_the_text(reader):
    ids, msg, text = explore.add_sentence(reader, "tiny-gru", "   ", ["x"])
    assert ids == ["x"] and "empty" in _text(msg)
    long = " ".join(["word"] * 501)
    ids, msg, text = explore.add_sentence(reader, "tiny-gru", long, [])
    assert ids == [] and "limit is 500" in _text(msg) and text == long


def test_html_in_a_sentence_is_escaped(reader):
    ids, msg, _ = explore.add_sentence(reader, "tiny-gru", "good <script>alert(1)</script> food & <b>bad</b>", [])
    fig, listing = explore.glyph_view(reader, "tiny-gru", 0, "h", 3, ids)
    title = fig["layout"]["annotations"][0]["text"]
    assert "<script>" not in title and "&lt;script&gt;" in title
    # Dash escapes children strings; the raw text stays a plain string, never markup
    assert isinstance(listing[0], html.Li)
    assert "<script>" in _text(listing[0]) and "dangerously" not in _text(listing[0])


def test_sentences_of_another_model_are_hidden(reader):
    ids, _, _ = explore.add_sentence(reader, "tiny-gru", "good food", [])
    fig, listing = explore.glyph_view(reader, "tiny-lstm", 1, "h", 3, ids)
    assert "belong to another model" in _text(listing)


def test_url_round_trips_the_view(reader):
    q = explore_url.url_search("tiny-lstm", 1, "c", 4, 25, ["the", "cat"], ["abcdef0123456789"], {"unit": 2, "chip": 0})
    vs = from_query(q)
    assert (vs.model, vs.layer, vs.state, vs.k, vs.nwords, vs.words, vs.sentences, vs.unit) == (
        "tiny-lstm", 1, "c", 4, 25, ("the", "cat"), ("abcdef0123456789",), 2)


def test_csv_exports(reader):
    df = explore.clusters_csv(reader, "tiny-lstm", 1, "h", 3)
    assert set(df["axis"]) == {"word", "unit", "edge"}
    assert (df["axis"] == "edge").sum() == 9
    d = explore.detail_csv(reader, "tiny-lstm", 1, "h", ["the", "zzz"])
    assert set(d["word"]) == {"the"} and len(d) == 8


# -- compare


def test_compare_two_models_matches_units_and_summarises_overlap(reader):
    opts_a, la, opts_b, lb, states, state, alert = compare.controls(reader, "tiny-lstm", "tiny-gru", None, None, None)
    assert (la, lb, state) == (1, 0, "h") and alert == []
    fa, fb, listing, overlap, ofig, mfig, msg = compare.compare_view(reader, "tiny-lstm", la, "tiny-gru", lb, state, 3)
    text = _text(listing) + _text(overlap) + _text(msg)
    assert ("matched unit pairs" in text and "adjusted Rand" in text) or "share only" in text
    assert fa["layout"]["title"]["text"].startswith("tiny-lstm L1")


def test_compare_two_layers_of_one_model(reader):
    _, la, _, lb, _, state, _ = compare.controls(reader, "tiny-lstm", "tiny-lstm", 0, None, "h")
    assert (la, lb) == (0, 1)
    fa, fb, listing, overlap, ofig, mfig, msg = compare.compare_view(reader, "tiny-lstm", 0, "tiny-lstm", 1, "h", 3)
    assert "matched unit pairs over" in _text(overlap)
    rows = listing.children[1].children[1].children
    assert len(rows) == 8
    # strongly matched units are outlined in both views; clicking a unit highlights just its pair
    pair, _ = compare.handle_click({"points": [{"customdata": ["unit", 5, 0]}]}, "a", {})
    fa, fb, listing, *_ = compare.compare_view(reader, "tiny-lstm", 0, "tiny-lstm", 1, "h", 3, pair=pair)
    units_a = _trace(fa, "units")
    outlined_a = [cd[1] for cd, w in zip(units_a["customdata"], units_a["marker"]["line"]["width"]) if w > 1]
    outlined_b = [w for w in _trace(fb, "units")["marker"]["line"]["width"] if w > 1]
    assert outlined_a == [5] and len(outlined_b) == 1
    assert "selected" in _text(listing)


def test_compare_detail_gradient_and_url(reader):
    da, db = compare.detail_pair(reader, "tiny-lstm", 0, "tiny-gru", 0, "h", ["the"])
    assert da["data"][0]["type"] == "box"
    g = compare.gradient(reader, "tiny-lstm", "tiny-gru")
    assert {t["name"] for t in g["data"]} == {"tiny-lstm layer 0", "tiny-lstm layer 1", "tiny-gru layer 0"}
    vs = from_query(compare.url_search("tiny-lstm", 0, "tiny-gru", 0, "h", 4, 15, ["the"]))
    assert (vs.model, vs.layer, vs.model_b, vs.layer_b, vs.k, vs.words) == ("tiny-lstm", 0, "tiny-gru", 0, 4, ("the",))


def test_compare_unknown_model(reader):
    *_, alert = compare.controls(reader, "tiny-lstm", "ghost", None, None, None)
    assert "unknown model 'ghost'" in _text(alert)


def test_healthz_and_pages_render(app_store):
    from analytics.settings import Settings
    from app.server import create_app
    app = create_app(Settings(store=app_store))
    client = app.server.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}     # liveness only, no count of models
    assert [p["name"] for p in sorted(dash.page_registry.values(), key=lambda p: p["order"])][:5] == [
        "Models", "Explore", "Projection", "Compare", "Patterns"]
    assert not app.config.suppress_callback_exceptions
    for path in ("/", "/explore?model=tiny-lstm", "/compare", "/explore?model=<script>"):
        assert client.get(path).status_code == 200
