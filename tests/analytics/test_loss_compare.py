"""The loss comparison of two models, against plain loops over the tokens."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.loss_compare import compare_losses

TAGS = {"the": "DET", "dog": "NOUN", "cat": "NOUN", "runs": "VERB", "<eos>": "."}


def _tokens(words, nll, sentences=None):
    return pd.DataFrame({"position": np.arange(1, len(words) + 1), "word": words,
                         "sentence": sentences if sentences is not None else np.arange(len(words)) // 5, "nll": nll})


def _random_pair(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    words = rng.choice(list(TAGS) + ["rare"], size=n)
    a = rng.gamma(2.0, 1.5, size=n)
    b = a + rng.normal(0.0, 0.5, size=n) + np.where(words == "dog", 0.8, 0.0)   # B is worse on "dog"
    sent = np.cumsum(np.r_[0, words[:-1] == "<eos>"])
    return _tokens(words, a, sent), _tokens(words, b, sent)


def test_totals_and_contributions_match_a_loop_over_tokens():
    a, b = _random_pair()
    got = compare_losses(a, b, TAGS, draws=200)
    assert got.tokens == 2000 and got.left_out == 0
    assert got.delta == pytest.approx(np.mean(a["nll"] - b["nll"]), abs=1e-12)
    assert got.by_tag["contribution"].sum() == pytest.approx(got.delta, abs=1e-12)
    assert got.by_word["contribution"].sum() == pytest.approx(got.delta, abs=1e-12)
    for _, row in got.by_tag.iterrows():
        mine = [i for i, w in enumerate(a["word"]) if TAGS.get(w, "X") == row["tag"]]
        assert row["n"] == len(mine)
        assert row["delta"] == pytest.approx(np.mean([a["nll"][i] - b["nll"][i] for i in mine]), abs=1e-12)
        assert row["lo"] <= row["delta"] <= row["hi"]
    noun = got.by_tag.set_index("tag").loc["NOUN"]
    assert noun["hi"] < 0                      # A is better on nouns, and the interval says so
    assert got.by_word.iloc[0]["word"] == "dog"  # the word A gains most on comes first


def test_a_constant_difference_has_a_zero_width_interval():
    words = ["the", "dog", "runs", "<eos>"] * 50
    a = _tokens(words, np.ones(200), np.arange(200) // 4)
    b = _tokens(words, np.full(200, 1.5), np.arange(200) // 4)
    got = compare_losses(a, b, TAGS, draws=100).by_tag
    assert np.allclose(got[["delta", "lo", "hi"]].to_numpy(), -0.5)


def test_the_interval_is_over_sentences_not_tokens():
    """Sentence-level noise: one shift per sentence. A token bootstrap would give a far narrower interval."""
    rng = np.random.default_rng(1)
    sent = np.repeat(np.arange(40), 20)
    shift = rng.normal(0, 1, size=40)[sent]
    words = ["dog"] * 800
    got = compare_losses(_tokens(words, 2.0 + shift, sent), _tokens(words, np.full(800, 2.0), sent), TAGS,
                         draws=400).by_tag.iloc[0]
    se_sentences = shift.reshape(40, 20)[:, 0].std(ddof=1) / np.sqrt(40)
    assert got["hi"] - got["lo"] == pytest.approx(2 * 1.96 * se_sentences, rel=0.3)


def test_tokens_predicted_differently_are_left_out_and_counted():
    a = _tokens(["the", "dog", "<unk>", "runs"], [1.0, 2.0, 3.0, 4.0])
    b = _tokens(["the", "dog", "cat", "runs", "the"], [1.5, 2.5, 0.1, 4.5, 9.0])
    got = compare_losses(a, b, TAGS, draws=50)
    assert got.tokens == 3 and got.left_out == 1 + 2      # <unk> vs cat (one in each), and B's extra token
    assert got.delta == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="share no predicted token"):
        compare_losses(a, _tokens(["x"], [1.0]).assign(position=99), TAGS)
