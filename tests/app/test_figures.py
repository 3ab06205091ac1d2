"""Figure builders: pure functions, valid plotly specs, escaped text, deterministic layouts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from analytics.glyphs import glyph_measures
from app import figures


def _view(k: int = 3, n_words: int = 12, n_units: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = pd.DataFrame({"word": [f"w{i}" for i in range(n_words - 2)] + ["<unk>", "<b>x</b>"],
                          "freq": rng.integers(1, 100, n_words), "pos": (["NOUN", "VERB", None] * n_words)[:n_words],
                          "cluster": np.arange(n_words) % k, "strength": rng.random(n_words)})
    units = pd.DataFrame({"unit": np.arange(n_units), "cluster": np.arange(n_units) % k,
                          "strength": rng.random(n_units)})
    units["rank"] = units.groupby("cluster")["strength"].rank(ascending=False, method="first").astype(int) - 1
    edges = rng.normal(size=(k, k))
    return words, units, edges


def _trace(fig: dict, name: str) -> dict:
    return next(t for t in fig["data"] if t.get("name") == name)


def test_cocluster_figure_is_a_valid_plotly_figure_with_one_cell_per_unit():
    words, units, edges = _view()
    fig = figures.cocluster_figure(words, units, edges)
    go.Figure(fig)  # validates every property
    cells = _trace(fig, "units")
    assert len(cells["x"]) == len(units)
    assert {cd[0] for cd in cells["customdata"]} == {"unit"}
    chips = _trace(fig, "chips")
    assert len(chips["customdata"]) == 3


def test_cocluster_words_are_escaped_but_customdata_is_raw():
    words, units, edges = _view()
    fig = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(nwords=50))
    w = _trace(fig, "words")
    assert "&lt;unk&gt;" in w["text"] and "&lt;b&gt;x&lt;/b&gt;" in w["text"]
    assert "<b>x</b>" not in w["text"]
    assert ["word", "<b>x</b>", 11 % 3] in w["customdata"]


def test_link_filter_hides_weak_links_and_colours_follow_the_sign():
    words, units, _ = _view(k=2)
    edges = np.array([[1.0, -0.5], [0.05, 0.2]])
    all_links = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(links=(0.0, 1.0)))
    strong = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(links=(0.4, 1.0)))
    assert len(_trace(all_links, "link weights")["x"]) == 4
    assert len(_trace(strong, "link weights")["x"]) == 2
    colours = {t["line"]["color"] for t in strong["data"] if t.get("name") == "links"}
    assert colours == {figures.POSITIVE, figures.NEGATIVE}


def test_word_response_colours_cells_clipped():
    words, units, edges = _view()
    resp = np.linspace(-1, 1, len(units))
    fig = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(word="w1", word_response=resp,
                                                                                 clip=0.5))
    m = _trace(fig, "units")["marker"]
    assert max(m["color"]) == pytest.approx(0.5) and min(m["color"]) == pytest.approx(-0.5)
    assert m["cmid"] == 0


def test_layout_is_deterministic_and_align_changes_cloud_positions():
    words, units, edges = _view(k=4, n_words=40, n_units=30)
    a = figures.cocluster_figure(words, units, edges)
    b = figures.cocluster_figure(words, units, edges)
    assert _trace(a, "words")["x"] == _trace(b, "words")["x"]
    c = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(align=False))
    assert _trace(a, "clouds")["y"] != _trace(c, "clouds")["y"] or _trace(a, "words")["y"] != _trace(c, "words")["y"]


def test_pos_legend_only_when_pos_colouring_is_on():
    words, units, edges = _view()
    on = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(pos=True))
    off = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(pos=False))
    assert any(t.get("showlegend") for t in on["data"])
    assert not any(t.get("showlegend") for t in off["data"])


def test_selection_dims_other_clusters():
    words, units, edges = _view()
    fig = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(chip=0, links=(0, 1)))
    op = _trace(fig, "units")["marker"]["opacity"]
    assert min(op) < 1.0 and max(op) == 1.0


def test_glyph_figure_has_one_panel_per_sentence_and_contributions_for_classifiers():
    rng = np.random.default_rng(0)
    s1 = {"title": "a <b>", "tokens": ["i", "<unk>", "it"], "original": ["i", "adore", "it"],
          "measures": glyph_measures(rng.normal(size=(3, 6)), np.array([0, 0, 1, 1, 2, 2])), "k": 3}
    s2 = dict(s1, contributions=rng.normal(size=(3, 2)), label_names=["neg", "pos"])
    fig = figures.glyph_figure([s1, s2])
    go.Figure(fig)
    assert "xaxis3" in fig["layout"] and "xaxis4" not in fig["layout"]
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert ticks[1] == "&lt;unk&gt;<br><i>adore</i>"
    assert fig["layout"]["annotations"][0]["text"] == "a &lt;b&gt;"
    assert {t["name"] for t in fig["data"] if t["xaxis"] == "x3"} == {"→ neg", "→ pos"}


def test_detail_figure_sorts_units_by_median_and_overlays_words():
    d1 = pd.DataFrame({"unit": [0, 1, 2], "n": [5, 5, 5], "mean": [0.1, 0.3, -0.2], "std": [0.1] * 3,
                       "q10": [-1, -1, -1], "q25": [0, 0, -0.5], "q50": [0.1, 0.3, -0.2], "q75": [0.2, 0.4, 0],
                       "q90": [1, 1, 1]})
    fig = figures.detail_figure({"he": d1, "she": d1.assign(q50=[0, 0, 0])})
    go.Figure(fig)
    assert fig["data"][0]["x"] == ["u1", "u0", "u2"]
    assert len(fig["data"]) == 2 and fig["data"][0]["lowerfence"] == [-1.0, -1.0, -1.0]
    assert "Click a word" in figures.detail_figure({})["layout"]["annotations"][0]["text"]


def test_other_figures_validate():
    m = pd.DataFrame({"model_id": ["a", "a", "b"], "epoch": [1, 1, 1], "split": ["train", "valid", "valid"],
                      "loss": [2.0, 2.1, 0.5], "perplexity": [7.4, 8.1, None], "accuracy": [None, None, 0.8]})
    go.Figure(figures.training_curves(m))
    gf = pd.DataFrame({"model_id": ["a"] * 3, "layer": [0] * 3, "distance": [1, 2, 3], "grad_norm": [1, .5, .2]})
    go.Figure(figures.gradient_flow_figure(gf))
    go.Figure(figures.contingency_figure(pd.DataFrame([[2, 0], [1, 3]]), "a", "b"))
    go.Figure(figures.unit_words_figure(pd.DataFrame({"word": ["x", "y"], "mean": [0.2, -0.1], "freq": [3, 4]}), 3))


# -- chance baselines


def test_cloud_labels_show_pos_makeup_and_purity_against_chance():
    words, units, edges = _view()
    purity = pd.DataFrame([{"cluster": 0, "words": 3, "majority": "NOUN", "purity": 0.75, "shuffled": 0.5,
                            "shuffled_std": 0.1, "makeup": {"NOUN": 3, "VERB": 1, ".": 1}}])
    fig = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(purity=purity))
    go.Figure(fig)
    clouds = _trace(fig, "clouds")
    assert clouds["text"][0] == "W0 · 4 words · NOUN 3, VERB 1, punct 1 · purity 0.75 (chance 0.50)"
    assert "chance (tags shuffled" in clouds["hovertext"][0] and "0.50 ± 0.10" in clouds["hovertext"][0]
    assert clouds["text"][1] == "W1 · 4 words"                      # no purity row: size only
    narrow = figures.cocluster_figure(words, units, edges, figures.CoclusterOptions(purity=purity, cloud_width=18))
    assert _trace(narrow, "clouds")["text"][0] == "W0 · 4 · POS 0.75 (0.50)"
    assert _trace(figures.cocluster_figure(words, units, edges), "clouds")["text"][0] == "W0 · 4 words"


def test_matched_r_figure_draws_the_chance_band_under_the_matched_pairs():
    pairs = pd.DataFrame({"unit_a": [0, 1, 2], "unit_b": [2, 0, 1], "correlation": [0.9, -0.6, 0.1]})
    chance = {"level": 0.31, "max": 0.33,
              "by_rank_mean": np.array([0.25, 0.15, 0.05]), "by_rank_lo": np.array([0.2, 0.1, 0.0]),
              "by_rank_hi": np.array([0.31, 0.2, 0.1]), "shuffles": 5}
    fig = figures.matched_r_figure(pairs, chance, "a L0", "b L0")
    go.Figure(fig)
    assert _trace(fig, "matched |r|")["y"] == [0.9, 0.6, 0.1]
    band = _trace(fig, "chance (min–max of 5 shuffles)")
    assert band["fill"] == "tonexty" and band["y"] == [0.31, 0.2, 0.1]
    assert _trace(fig, "chance (mean)")["y"] == [0.25, 0.15, 0.05]
    assert "chance: |r| up to 0.31" in fig["layout"]["title"]["text"]
    assert [t["name"] for t in figures.matched_r_figure(pairs, None)["data"]] == ["matched |r|"]
    assert "No matched" in figures.matched_r_figure(pairs.iloc[:0], chance)["layout"]["annotations"][0]["text"]


def test_unit_words_show_n_and_z_and_mark_weak_rows():
    df = pd.DataFrame({"word": ["once", "often", "never"], "mean": [0.9, 0.5, -0.3], "freq": [1, 400, 80],
                       "n": [1, 400, 80], "z": [np.nan, 25.0, -1.2], "weak": [True, False, True]})
    fig = figures.unit_words_figure(df, 4)
    go.Figure(fig)
    bar = fig["data"][0]
    top = bar["y"].index("? once")                   # the one-occurrence word is still shown, but marked
    assert bar["y"][top] == "? once" and "often" in bar["y"] and "? never" in bar["y"]
    assert bar["text"][top] == "n=1 · z —" and bar["text"][bar["y"].index("often")] == "n=400 · z +25.0"
    shapes = bar["marker"]["pattern"]["shape"]
    assert shapes[top] == "/" and shapes[bar["y"].index("often")] == ""
    assert "weak" in bar["hovertext"][top] and "z = mean/(std/√n)" in fig["layout"]["title"]["subtitle"]["text"]


def test_gradient_flow_uses_powers_of_ten_and_reaches_1e_minus_30():
    k = np.arange(1, 41)
    gf = pd.DataFrame({"model_id": ["rnn"] * 40, "layer": [0] * 40, "distance": k,
                       "grad_norm": np.r_[10.0 ** -(k[:-1] * 30 / 39), 0.0]})   # 1 ... 1e-30, then a zero
    fig = figures.gradient_flow_figure(gf)
    go.Figure(fig)
    y = fig["layout"]["yaxis"]
    assert y["type"] == "log" and y["exponentformat"] == "power" and y["showexponent"] == "all"
    assert y["range"][0] <= -30 and y["range"][1] >= 0           # the whole span is in view
    line = fig["data"][0]["y"]
    assert line[-2] == pytest.approx(1e-30) and line[-1] is None    # 0 cannot sit on a log axis: a gap
    assert "%{y:.3e}" in fig["data"][0]["hovertemplate"]
    assert "1 point(s) with norm 0" in fig["layout"]["annotations"][0]["text"]
    assert figures.gradient_flow_figure(gf.iloc[:-1])["layout"]["annotations"] == []
