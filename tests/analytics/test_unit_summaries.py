"""``unit_summaries`` and ``unit_tags`` against an independent recomputation from a batch-1 trace."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analytics import store
from analytics.pipeline import AnalysisOptions, analyze_model
from models import load_model
from models.config import ModelConfig, TrainConfig
from models.corpora import load_corpus
from models.train import lm_stream, train_model


@pytest.fixture(scope="module")
def brown_store(tmp_path_factory, fixtures):
    root = tmp_path_factory.mktemp("unit-summaries")
    brown = load_corpus(str(fixtures / "brown"))
    train_model("sum-lstm", ModelConfig("lm", "lstm", 1, 6, 6), TrainConfig(epochs=1, batch_size=8, bptt=10),
                root, corpus=brown, show_progress=False)
    analyze_model("sum-lstm", root, AnalysisOptions(batch_size=8, top_words=40, min_count=2, k_max=3, gradient_k=0,
                                                    max_tokens=3000), corpus=brown, show_progress=False)
    return root, brown


def test_tag_statistics_are_welchs_test_on_the_stream(brown_store):
    root, brown = brown_store
    model, vocab = load_model("sum-lstm", store=root)
    ids = lm_stream(brown, vocab, "test", 3000)
    h = model.trace(ids[:, None])[(0, "h")][:, 0].numpy()                   # [N, H], one stream from zero
    delta = np.diff(h, axis=0, prepend=np.zeros((1, h.shape[1]), h.dtype))
    tags = np.array([vocab.pos.get(vocab.words[i], "") for i in ids.tolist()], dtype=object)
    con = store.connect(root)
    got = store.query(con, "SELECT unit, tag, n, mean, std, z FROM unit_tags WHERE model_id = ? AND layer = 0 "
                           "AND state = 'h'", ["sum-lstm"])
    assert set(got["tag"]) == set(tags) - {""}
    for row in got.itertuples():
        m = tags == row.tag
        x, rest = delta[m, row.unit], delta[~m, row.unit]
        assert row.n == m.sum()
        assert np.isclose(row.mean, x.mean(), atol=1e-4) and np.isclose(row.std, x.std(ddof=1), atol=1e-4)
        t = sps.ttest_ind(x, rest, equal_var=False).statistic
        assert np.isclose(row.z, t, rtol=1e-2, atol=1e-2), (row, t)


def test_summary_words_tags_and_description(brown_store):
    root, _ = brown_store
    con = store.connect(root)
    summ = store.query(con, "SELECT * FROM unit_summaries WHERE model_id = ? AND layer = 0 AND state = 'h' "
                            "ORDER BY unit", ["sum-lstm"])
    assert len(summ) == 6
    resp = store.query(con, "SELECT unit, word, n, mean, std FROM word_responses WHERE model_id = ? AND layer = 0 "
                            "AND state = 'h'", ["sum-lstm"])
    tags = store.query(con, "SELECT unit, tag, z FROM unit_tags WHERE model_id = ? AND layer = 0 AND state = 'h'",
                       ["sum-lstm"])
    for row in summ.itertuples():
        r = resp[resp.unit == row.unit]
        assert row.n == r["n"].sum() and np.isclose(row.mean, np.average(r["mean"], weights=r["n"]), atol=1e-6)
        often = r[r.n >= 5].sort_values("mean", ascending=False)
        assert row.top_words.split(", ") == list(often["word"][:5])
        assert row.bottom_words.split(", ") == list(often["word"][::-1][:5])
        t = tags[tags.unit == row.unit].sort_values("z")
        assert row.top_tag == t["tag"].iloc[-1] and row.bottom_tag == t["tag"].iloc[0]
        d = row.description
        assert ("top: " + ", ".join(list(often["word"][:3]))) in d
        name = {".": "punctuation"}.get(row.top_tag, row.top_tag)
        assert (f"+ on {name} (z {row.top_tag_z:.1f})" in d) == (row.top_tag_z >= 3)


def test_no_tags_no_tag_rows(tmp_path, fixtures):
    ptb = load_corpus(str(fixtures / "ptb"))
    train_model("ptb", ModelConfig("lm", "rnn", 1, 4, 4), TrainConfig(epochs=1, batch_size=4, bptt=10), tmp_path,
                corpus=ptb, show_progress=False)
    analyze_model("ptb", tmp_path, AnalysisOptions(batch_size=4, top_words=20, min_count=2, k_max=3, gradient_k=0),
                  corpus=ptb, show_progress=False)
    con = store.connect(tmp_path)
    summ = store.query(con, "SELECT * FROM unit_summaries WHERE model_id = 'ptb'")
    assert len(summ) == 4 and summ["top_tag"].isna().all() and summ["description"].str.startswith("top: ").all()
    assert store.query(con, "SELECT count(*) AS n FROM unit_tags WHERE model_id = 'ptb'")["n"][0] == 0
    assert isinstance(summ, pd.DataFrame)
