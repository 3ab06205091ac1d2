"""URL <-> view state: round trips, defaults, and hostile input."""
from __future__ import annotations

from app.urlstate import K_DEFAULT, MAX_WORDS, ViewState, from_query, href, to_query


def test_round_trip_keeps_every_field():
    vs = ViewState(model="demo-lstm", layer=1, state="c", k=12, nwords=30, words=("he", "she", "a,b&c"),
                   sentences=("0123456789abcdef0123",), unit=7, model_b="demo-gru", layer_b=0)
    q = to_query(vs)
    assert q.startswith("?")
    assert from_query(q) == vs


def test_dash_pages_parsed_params_decode_like_the_string():
    # Dash pages hands layout() single values as str and repeated keys as lists
    vs = from_query({"model": "m1", "layer": "0", "w": ["the", "a"], "s": "abcdef0123456789"})
    assert vs.model == "m1" and vs.layer == 0 and vs.words == ("the", "a")
    assert vs.sentences == ("abcdef0123456789",)


def test_defaults_are_left_out_of_the_url():
    assert to_query(ViewState()) == ""
    assert to_query(ViewState(model="m", k=K_DEFAULT)) == "?model=m"


def test_malformed_values_fall_back_to_defaults():
    vs = from_query("?model=m&layer=abc&k=999&n=-4&state=<script>&s=../../etc&unit=x")
    assert vs.layer is None
    assert vs.k == 20            # clamped to 2..20
    assert vs.nwords == 3        # clamped
    assert vs.state is None      # not a state name
    assert vs.sentences == ()    # not a sentence id
    assert vs.unit is None
    assert from_query("?k=1").k == 2


def test_a_model_id_with_markup_is_reported_not_used():
    vs = from_query("?model=<img src=x onerror=alert(1)>")
    assert vs.model is None
    assert vs.bad_model == "<img src=x onerror=alert(1)>"


def test_words_are_deduplicated_and_capped():
    vs = from_query("?" + "&".join(f"w=w{i % 5}" for i in range(10)))
    assert vs.words == tuple(f"w{i}" for i in range(MAX_WORDS))


def test_href_joins_path_and_query():
    assert href("/explore", ViewState(model="m", layer=1)) == "/explore?model=m&layer=1"


def test_the_detail_mode_survives_the_url():
    # a unit picked after words: the unit's view, which the words alone would reopen as word mode
    vs = ViewState(model="m", words=("the",), unit=38, detail="unit")
    assert to_query(vs).endswith("&unit=38&detail=unit")
    assert from_query(to_query(vs)).detail_mode == "unit"
    # implied modes stay out of the URL, old links keep their meaning
    assert "detail" not in to_query(ViewState(model="m", unit=38, detail="unit"))
    assert from_query("?model=m&unit=38").detail_mode == "unit"
    assert from_query("?model=m&w=the&unit=38").detail_mode == "word"
    assert from_query("?model=m&unit=38&detail=word").detail_mode == "word"
    assert from_query("?model=m&unit=38&detail=bogus").detail_mode == "unit"


def test_explore_settings_round_trip_and_defaults_stay_out():
    vs = ViewState(model="m", stroke=2.5, links=(0.3, 0.9), clip=-1.25, options=("pos", "glyphs"))
    assert from_query(to_query(vs)) == vs
    assert "stroke=2.5" in to_query(vs) and "links=0.3-0.9" in to_query(vs)
    assert from_query(to_query(ViewState(options=()))).options == ()            # none ticked: opt=none
    assert to_query(from_query("?model=m&stroke=1&links=0.1-1&opt=pos&opt=align")) == "?model=m"


def test_each_corrected_value_is_noted():
    vs = from_query("?k=99&layer=500&n=x&stroke=9&links=0.9-0.1&clip=abc&opt=pos&opt=bogus&state=<b>&unit=-3")
    notes = " | ".join(vs.notes)
    for phrase in ("k 99 → 20", "layer 500 → 64", "n 'x' is not a whole number", "stroke 9 → 3",
                   "links '0.9-0.1'", "clip 'abc'", "opt 'bogus' ignored", "state '<b>'", "unit -3 → 0"):
        assert phrase in notes, (phrase, notes)
    assert (vs.k, vs.stroke, vs.links, vs.clip, vs.options) == (20, 3.0, (0.1, 1.0), None, ("pos",))
    assert from_query("?model=m&k=8&stroke=0.5").notes == ()
