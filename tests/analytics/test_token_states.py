"""Per-token states: what the analysis stores (text order, float16, SQL), and how big it is."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from analytics import store
from analytics import token_states as ts
from analytics.pipeline import AnalysisOptions, analyze_model
from models import load_model
from models.config import ModelConfig, TrainConfig
from models.corpora import load_corpus
from models.train import lm_stream, train_model


@pytest.fixture(scope="module")
def ptb(fixtures):
    return load_corpus(str(fixtures / "ptb"))


@pytest.fixture(scope="module")
def lm_store(tmp_path_factory, ptb):
    root = tmp_path_factory.mktemp("token-states")
    train_model("ts-lstm", ModelConfig("lm", "lstm", 2, 8, 6), TrainConfig(epochs=1, batch_size=4, bptt=10),
                root, corpus=ptb, show_progress=False)
    return root


def _analyze(root, ptb, **kw):
    opts = dict(batch_size=1, chunk_steps=7, states="h,c", min_count=2, top_words=20, k_max=3, gradient_k=0)
    analyze_model("ts-lstm", root, AnalysisOptions(**{**opts, **kw}), corpus=ptb, show_progress=False)


def test_default_stores_the_last_layers_h_in_text_order_as_float16(lm_store, ptb):
    _analyze(lm_store, ptb)
    model, vocab = load_model("ts-lstm", store=lm_store)
    stream = lm_stream(ptb, vocab, "test")
    want = model.trace(stream[:, None])[(1, "h")][:, 0].numpy()            # [N, H], one stream from zero
    con = store.connect(lm_store)
    info = ts.info(con, "ts-lstm")
    assert info.keys == ((1, "h"),) and info.tokens == stream.numel() and info.hidden == 8
    got = ts.unit_series(con, "ts-lstm", 1, "h", range(8), info.tokens)
    assert np.allclose(got, want, atol=2e-3)                                # float16 keeps ~3 decimals
    words = ts.corpus_words(con, "ts-lstm")
    assert list(words["word_id"]) == stream.tolist()
    assert list(words["word"][:5]) == [vocab.words[i] for i in stream[:5].tolist()]
    # SQL reaches it: a unit's strongest positions with their words, and the types are the schema's
    top = store.query(con, "SELECT t.position, c.word, t.value FROM token_states t JOIN corpus_tokens c "
                           "USING (model_id, position) WHERE model_id = ? AND layer = 1 AND state = 'h' "
                           "AND unit = 3 ORDER BY value DESC LIMIT 5", ["ts-lstm"])
    assert len(top) == 5 and np.isclose(top["value"][0], want[:, 3].max(), atol=2e-3)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'token_states'").fetchall())
    assert types["value"] == "FLOAT" and types["position"] == "INTEGER"
    f = store.table_file(lm_store, "models", "ts-lstm", "token_states")
    assert pq.read_schema(f).field("value").type == pa.float16()
    meta = pq.ParquetFile(f).metadata
    assert "DELTA_BINARY_PACKED" in str(meta.row_group(0).column(4).encodings)
    # a passage: every unit over a few positions
    p = ts.passage(con, "ts-lstm", 1, "h", 10, 20, 8)
    assert p.shape == (10, 8) and np.allclose(p, want[10:20], atol=2e-3)


def test_chosen_states_and_none(lm_store, ptb):
    _analyze(lm_store, ptb, token_states="0:c,1:h")
    con = store.connect(lm_store)
    assert ts.info(con, "ts-lstm").keys == ((0, "c"), (1, "h"))
    model, vocab = load_model("ts-lstm", store=lm_store)
    stream = lm_stream(ptb, vocab, "test")
    want = model.trace(stream[:, None])[(0, "c")][:, 0].numpy()
    got = ts.unit_series(con, "ts-lstm", 0, "c", range(8), stream.numel())
    assert np.allclose(got, want, atol=2e-3 * max(1.0, float(np.abs(want).max())))
    _analyze(lm_store, ptb, token_states="none")
    assert ts.info(store.connect(lm_store), "ts-lstm").keys == ()
    with pytest.raises(ValueError, match="not traced"):
        _analyze(lm_store, ptb, token_states="1:f")


def test_parallel_pieces_are_close_to_the_stream(lm_store, ptb):
    """The analysis traces parallel pieces made exact; their stored states are the stream's, to float16."""
    _analyze(lm_store, ptb, batch_size=4, warmup=20)
    model, vocab = load_model("ts-lstm", store=lm_store)
    stream = lm_stream(ptb, vocab, "test")
    want = model.trace(stream[:, None])[(1, "h")][:, 0].numpy()
    got = ts.unit_series(store.connect(lm_store), "ts-lstm", 1, "h", range(8), stream.numel())
    assert np.isfinite(got).all()
    assert (np.abs(got - want) <= np.spacing(np.abs(want).astype(np.float16)) + 1e-4).all()


def test_size_of_650_units_fits_the_budget(tmp_path):
    """h-like values (tanh of AR(1) processes, as persistent as LSTM units): bytes per value, extrapolated to
    the 2x650 LSTM over Brown's test split (104,448 tokens), must stay under 150 MB."""
    from scipy.signal import lfilter

    N, H = 8_000, 650
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 0.98, H)
    x = rng.standard_normal((N, H))
    for u in range(H):
        x[:, u] = lfilter([1.0], [1.0, -a[u]], x[:, u]) * np.sqrt(1 - a[u] ** 2)
    col = ts.TokenStateCollector([(1, "h")], [(1, "h")], H, N, deltas=False)
    col.begin(None, 1, N)
    col.add(torch.from_numpy(np.tanh(x).astype(np.float32))[:, None, :], 0)
    with store.write_partition(tmp_path, "models", "size") as w:
        w.write("models", _models_row("size"))
        col.write(w, "size")
    f = store.table_file(tmp_path, "models", "size", "token_states")
    per_value = f.stat().st_size / (N * H)
    assert per_value < 2.1, per_value                     # float16 is 2 bytes; positions and keys ~free
    assert per_value * 104_448 * 650 / 1e6 < 150
    con = store.connect(tmp_path)
    assert store.query(con, "SELECT count(*) AS n FROM token_states")["n"][0] == N * H


def _models_row(model_id: str):
    import pandas as pd

    from analytics.schema import VIEWS
    row = {c.name: None for c in VIEWS["models"].columns}
    row.update(model_id=model_id, name=model_id, task="lm", cell="lstm", layers=2, hidden_size=650)
    return pd.DataFrame([row])


def test_the_option_is_checked_where_it_is_given():
    """--token-states and a job's analysis params: a malformed value is refused before any work."""
    from workers.errors import JobValidationError
    from workers.planning import _analysis_params

    for ok in ("last", "none", "all", "1:h,0:c", "h"):
        assert AnalysisOptions(token_states=ok).validate().token_states == ok
    assert _analysis_params({"token_states": "0:c"})["token_states"] == "0:c"
    with pytest.raises(JobValidationError, match="token_states"):
        _analysis_params({"token_states": "1:"})
    with pytest.raises(ValueError, match="layer:state"):
        AnalysisOptions(token_states="x:h").validate()


def test_cli_flag_reaches_the_options():
    from app.cli import build_parser
    from app.cli.common import analysis_options

    args = build_parser().parse_args(["analyze", "m", "--token-states", "0:c,1:h"])
    assert analysis_options(args).token_states == "0:c,1:h"
    assert analysis_options(build_parser().parse_args(["analyze", "m"])).token_states == "last"


def test_a_classifier_stores_its_documents_in_order(tmp_path, fixtures):
    """Documents traced in length-sorted batches land at their own positions, each from zero state."""
    reviews = load_corpus(str(fixtures / "reviews.csv"))
    train_model("ts-gru", ModelConfig("sentiment", "gru", 1, 8, 6),
                TrainConfig(epochs=1, batch_size=8, optimizer="adam", lr=1e-2), tmp_path, corpus=reviews,
                show_progress=False)
    analyze_model("ts-gru", tmp_path, AnalysisOptions(batch_size=3, top_words=20, min_count=2, k_max=3,
                                                      gradient_k=0), corpus=reviews, show_progress=False)
    model, vocab = load_model("ts-gru", store=tmp_path)
    con = store.connect(tmp_path)
    info = ts.info(con, "ts-gru")
    words = ts.corpus_words(con, "ts-gru")
    got = ts.unit_series(con, "ts-gru", 0, "h", range(8), info.tokens)
    assert info.keys == ((0, "h"),) and words["document"].is_monotonic_increasing
    for doc, rows in list(words.groupby("document"))[:6]:
        ids = torch.tensor(rows["word_id"].to_numpy())[:, None]
        want = model.trace(ids)[(0, "h")][:, 0].numpy()
        assert np.allclose(got[rows["position"].to_numpy()], want, atol=2e-3), doc
