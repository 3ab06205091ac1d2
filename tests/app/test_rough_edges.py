"""The rough edges a walkthrough found (issue 10, section 3), each reached through Dash's own dispatch
(POST /_dash-update-component) with the values the browser would send.
"""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from analytics.settings import Settings
from app import ids
from app.server import create_app
from tests.app.dispatching import _key, dispatch


@pytest.fixture(scope="module")
def client(app_store):
    app = create_app(Settings(store=app_store))
    c = app.server.test_client()
    assert c.get("/healthz").status_code == 200     # registers the pages' callbacks
    return app, c


# --------------------------------------------------------------------------- SQL console, CSV downloads


def test_sql_grid_shows_rounded_float32_values_without_noise(client):
    app, c = client
    sql = ("SELECT unit, round(mean, 4) AS rounded, mean FROM word_responses "
           "WHERE model_id = 'tiny-lstm' AND layer = 0 AND state = 'h' ORDER BY word_id, unit LIMIT 40")
    out = dispatch(app, c, ids.SQL_TABLE, {ids.SQL_EDITOR: sql, ids.SQL_RUN: 1}, f"{ids.SQL_RUN}.n_clicks")
    cols = {col["headerName"]: col["field"] for col in out[(ids.SQL_TABLE, "columnDefs")]}
    rows = out[(ids.SQL_TABLE, "rowData")]
    rounded = [r[cols["rounded"]] for r in rows]
    assert len(rounded) == 40 and any(v != 0 for v in rounded)
    assert all(len(repr(v).split(".")[-1].lstrip("-")) <= 4 or "e" in repr(v) for v in rounded), rounded
    # the unrounded float32 keeps its own (shortest) digits; the CSV download writes the same text
    csv = dispatch(app, c, ids.SQL_DOWNLOAD, {ids.SQL_LAST: sql, ids.SQL_CSV: 1}, f"{ids.SQL_CSV}.n_clicks")
    text = csv[(ids.SQL_DOWNLOAD, "data")]["content"]
    frame = pd.read_csv(io.StringIO(text), dtype=str)
    assert [float(x) for x in frame["rounded"]] == rounded
    assert [float(x) for x in frame["mean"]] == [r[cols["mean"]] for r in rows]


def test_clusters_csv_writes_integer_columns_as_integers(client):
    app, c = client
    out = dispatch(app, c, ids.EX_DOWNLOAD, {
        ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_K: 3, ids.EX_WORDS: [],
        ids.EX_CSV_CLUSTERS: 1}, f"{ids.EX_CSV_CLUSTERS}.n_clicks")
    text = out[(ids.EX_DOWNLOAD, "data")]["content"]
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert set(frame["axis"]) == {"word", "unit", "edge"}
    for col in ("layer", "k", "item", "freq", "cluster"):
        assert frame[col].str.fullmatch(r"-?\d*").all(), (col, frame[col].head().tolist())
    assert (frame.loc[frame["axis"] == "word", "freq"] != "").all()


# --------------------------------------------------------------------------- compare


def _compare_values(**over) -> dict:
    v = {ids.CMP_MODEL_A: "tiny-lstm", ids.CMP_LAYER_A: 0, ids.CMP_MODEL_B: "tiny-lstm", ids.CMP_LAYER_B: 1,
         ids.CMP_STATE: "h", ids.CMP_K: 3, ids.CMP_NWORDS: 10, ids.CMP_PAIR: {}, ids.CMP_WORD: None}
    v.update(over)
    return v


def _luminance(color: str) -> float:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_cluster_overlap_heat_map_draws_zero_pale_and_high_counts_dark(client):
    app, c = client
    out = dispatch(app, c, ids.CMP_OVERLAP_FIG, _compare_values(), f"{ids.CMP_K}.value")
    heat = out[(_key(ids.CMP_OVERLAP_FIG), "figure")]["data"][0]
    scale = heat["colorscale"]
    assert isinstance(scale, list), "a named plotly scale: 'Blues' runs dark to pale in plotly.js"
    assert scale[0][0] == 0 and scale[-1][0] == 1
    assert _luminance(scale[0][1]) > 0.9 > 0.3 > _luminance(scale[-1][1])
    assert heat.get("zmin") == 0 and not heat.get("reversescale")


# --------------------------------------------------------------------------- sentences


def _add_and_list(app, c, model: str, text: str) -> list:
    out = dispatch(app, c, ids.EX_SENTENCES, {ids.EX_MODEL: model, ids.EX_SENTENCE_TEXT: text, ids.EX_SENTENCES: [],
                                              ids.EX_SENTENCE_ADD: 1}, f"{ids.EX_SENTENCE_ADD}.n_clicks")
    sids = out[(ids.EX_SENTENCES, "data")]
    assert len(sids) == 1, out
    out = dispatch(app, c, ids.EX_SENTENCE_LIST, {ids.EX_MODEL: model, ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_K: 3,
                                                  ids.EX_SENTENCES: sids}, f"{ids.EX_SENTENCES}.data")
    return out[(ids.EX_SENTENCE_LIST, "children")]


def _spans(listing) -> list[dict]:
    found = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("type") == "Span":
                found.append(x["props"])
            for v in x.get("props", {}).values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(listing)
    return found


def test_a_language_model_sentence_shows_its_next_word_prediction(client):
    app, c = client
    pred = next(s for s in _spans(_add_and_list(app, c, "tiny-lstm", "the cat sat on the"))
                if "prediction" in s.get("className", ""))
    assert pred["children"].startswith("  →  next word “") and "(p = 0." in pred["children"]
    assert "prediction-next" in pred["className"]


def test_a_negative_prediction_is_not_drawn_in_green(client):
    app, c = client
    pred = next(s for s in _spans(_add_and_list(app, c, "tiny-gru", "terrible awful bad food"))
                if "prediction" in s.get("className", ""))
    label = pred["children"].split("→")[1].split("(")[0].strip()
    assert label in ("positive", "negative")
    assert f"prediction-{label}" in pred["className"].split()   # style.css: positive green, negative red


def test_picking_the_same_model_as_b_gives_b_the_other_layer(client):
    app, c = client
    # A: tiny-lstm layer 1; B was another model on its layer 1; the user picks tiny-lstm as B as well
    out = dispatch(app, c, ids.CMP_LAYER_B, {ids.CMP_MODEL_A: "tiny-lstm", ids.CMP_MODEL_B: "tiny-lstm",
                                             ids.CMP_LAYER_A: 1, ids.CMP_LAYER_B: 1, ids.CMP_STATE: "h"},
                   f"{ids.CMP_MODEL_B}.value")
    assert out[(ids.CMP_LAYER_A, "value")] == 1 and out[(ids.CMP_LAYER_B, "value")] == 0


@pytest.fixture(scope="module")
def wide_client(wide_store):
    app = create_app(Settings(store=wide_store))
    c = app.server.test_client()
    assert c.get("/healthz").status_code == 200
    return app, c


def test_a_clicked_pair_outside_the_top_15_is_listed(wide_client, wide_store):
    from app.reader import Reader

    app, c = wide_client
    pairs = Reader(wide_store).matching(("tiny-wide", 0, "h"), ("tiny-wide", 1, "h"), 3)["pairs"]
    assert len(pairs) == 32
    far = pairs.iloc[25]
    values = _compare_values(**{ids.CMP_MODEL_A: "tiny-wide", ids.CMP_MODEL_B: "tiny-wide",
                                ids.CMP_PAIR: {"side": "b", "unit": int(far.unit_b)}})
    # the user clicked unit u of B in its view (the click callback turns it into the selected pair)
    click = {"points": [{"customdata": ["unit", int(far.unit_b), int(far.cluster_b)]}]}
    sel = dispatch(app, c, ids.CMP_PAIR, {_key(ids.CMP_CLUSTER_B): click, ids.CMP_PAIR: {}},
                   f"{_key(ids.CMP_CLUSTER_B)}.clickData")
    assert sel[(ids.CMP_PAIR, "data")] == values[ids.CMP_PAIR]
    out = dispatch(app, c, ids.CMP_MATCHES, values, f"{ids.CMP_PAIR}.data")
    rows = [r for r in json.dumps(out[(ids.CMP_MATCHES, "children")], ensure_ascii=False).split('"type": "Tr"')]
    selected = [r for r in rows if "match-row selected" in r]
    assert len(selected) == 1 and f"u{int(far.unit_b)} (H{int(far.cluster_b)})" in selected[0]
    assert '"26"' in selected[0]                     # its rank
    assert sum("match-row" in r for r in rows) == 16  # the top 15, then the clicked one


# --------------------------------------------------------------------------- explore


def _explore_values(**over) -> dict:
    v = {ids.EX_MODEL: "tiny-lstm", ids.EX_LAYER: 0, ids.EX_STATE: "h", ids.EX_K: 3, ids.EX_NWORDS: 10,
         ids.EX_STROKE: 1.0, ids.EX_LINKS: [0.1, 1.0], ids.EX_CLIP: -1.0, ids.EX_OPTIONS: ["pos", "align"],
         ids.EX_WORDS: [], ids.EX_SELECTION: {}, ids.EX_SENTENCES: []}
    v.update(over)
    return v


def _text(children) -> str:
    out = []

    def walk(x):
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            walk(x.get("props", {}).get("children"))
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(children)
    return "".join(out)


def test_a_gate_state_says_what_is_clustered_and_what_sizes_the_words(client):
    app, c = client
    out = dispatch(app, c, ids.EX_SUMMARY, _explore_values(**{ids.EX_STATE: "i"}), f"{ids.EX_STATE}.value")
    text = _text(out[(ids.EX_SUMMARY, "children")])
    assert "Gates are not co-clustered: the chips and clouds are the co-clusters of h (hidden)" in text
    assert "show the activations of i (input gate)" in text
    assert "a word's size: its mean |i| (the gate's activation)" in text
    text = _text(dispatch(app, c, ids.EX_SUMMARY, _explore_values(), f"{ids.EX_STATE}.value")[
        (ids.EX_SUMMARY, "children")])
    assert "Co-clusters of h (hidden); a word's size: its mean |Δh| towards its cloud's chip." in text


def test_word_clusters_without_units_are_named_in_the_view(lone_store):
    from app.reader import Reader
    from tests.app.conftest import LONE

    app = create_app(Settings(store=lone_store))
    c = app.server.test_client()
    assert c.get("/healthz").status_code == 200     # registers the pages' callbacks
    model, layer, state, k = LONE
    view = Reader(lone_store).clusters(model, layer, state, k)
    lone = sorted(set(view.words["cluster"]) - set(view.units["cluster"]))
    assert lone == [1, 2, 3]
    out = dispatch(app, c, ids.EX_SUMMARY, _explore_values(**{ids.EX_MODEL: model, ids.EX_LAYER: layer,
                                                              ids.EX_STATE: state, ids.EX_K: k}), f"{ids.EX_K}.value")
    text = _text(out[(ids.EX_SUMMARY, "children")])
    assert "3 of 4 word clusters have no units (W1, W2, W3: co-clustering left their unit clusters empty" in text
    assert "1 memory chips" in text
    clouds = next(t for t in out[(_key(ids.EX_COCLUSTER), "figure")]["data"] if t.get("name") == "clouds")
    labelled = {cd[1] for cd, t in zip(clouds["customdata"], clouds["text"]) if "no units" in t}
    assert labelled == set(lone)
    assert all("no chip of its own" in h for cd, h in zip(clouds["customdata"], clouds["hovertext"]) if cd[1] in lone)


def test_the_word_picker_finds_any_vocabulary_word_on_the_server(client, app_store):
    from app.reader import Reader

    app, c = client
    r = Reader(app_store)
    clustered = set(r.clusters("tiny-lstm", 0, "h", 3).words["word"])
    vocab = r.vocab("tiny-lstm")
    rare = next(w for w in vocab.sort_values("freq")["word"] if w not in clustered and w.isalpha() and len(w) > 2)
    values = {**_explore_values(**{ids.EX_WORDS: ["the"]}), (ids.EX_WORDS, "search_value"): rare[:3]}
    out = dispatch(app, c, ids.EX_WORDS, values, f"{ids.EX_WORDS}.search_value")
    options = [o["value"] for o in out[(ids.EX_WORDS, "options")]]
    assert options[0] == "the" and rare in options and len(options) <= 51
    assert all(rare[:3] in w.lower() for w in options[1:])
    # before typing: the view's co-clustered words; and the rare word's box plots once picked
    idle = dispatch(app, c, ids.EX_WORDS, {**_explore_values(), (ids.EX_WORDS, "search_value"): None},
                    f"{ids.EX_K}.value")  # nothing typed: the renderer sends no search text (not the picked list)
    assert {o["value"] for o in idle[(ids.EX_WORDS, "options")]} == clustered
    out = dispatch(app, c, ids.EX_DETAIL_MSG, _explore_values(**{ids.EX_WORDS: [rare], ids.EX_DETAIL_MODE: "word"}),
                   f"{ids.EX_WORDS}.value")
    boxes = out[(_key(ids.EX_DETAIL), "figure")]["data"]
    assert [b["name"] for b in boxes] == [rare] and out[(ids.EX_DETAIL_MSG, "children")] == ""


def test_sentence_glyph_rows_can_sit_beside_their_chips(client):
    app, c = client
    out = dispatch(app, c, ids.EX_SENTENCES, {ids.EX_MODEL: "tiny-lstm", ids.EX_SENTENCE_TEXT: "the cat sat on the mat",
                                              ids.EX_SENTENCES: [], ids.EX_SENTENCE_ADD: 1},
                   f"{ids.EX_SENTENCE_ADD}.n_clicks")
    sids = out[(ids.EX_SENTENCES, "data")]
    values = _explore_values(**{ids.EX_SENTENCES: sids, ids.EX_OPTIONS: ["pos", "align", "glyphs"]})
    fig = dispatch(app, c, ids.EX_SUMMARY, values, f"{ids.EX_OPTIONS}.value")[(_key(ids.EX_COCLUSTER), "figure")]
    cells = next(t for t in fig["data"] if t.get("name") == "units")
    chip_mid = {}
    for (_, _, j), y in zip(cells["customdata"], cells["y"]):
        lo, hi = chip_mid.get(j, (y, y))
        chip_mid[j] = (min(lo, y), max(hi, y))
    bars = [t for t in fig["data"] if t.get("type") == "bar"]
    aggregate = next(t for t in bars if t["name"] == "aggregate α+")
    assert len(aggregate["x"]) == 6 * len(chip_mid)                  # every token, every chip
    for (_, _pos, j), base, x in zip(aggregate["customdata"], aggregate["base"], aggregate["x"]):
        assert base == pytest.approx(sum(chip_mid[j]) / 2)           # level with its chip
        assert x < min(cells["x"])                                   # left of the chips
    tokens = [a["text"] for a in fig["layout"]["annotations"] if a.get("name") == "glyph-token"]
    assert tokens == ["the", "cat", "sat", "on", "the", "mat"]
    # off by default
    plain = dispatch(app, c, ids.EX_SUMMARY, _explore_values(**{ids.EX_SENTENCES: sids}), f"{ids.EX_OPTIONS}.value")
    assert not [t for t in plain[(_key(ids.EX_COCLUSTER), "figure")]["data"] if t.get("type") == "bar"]
