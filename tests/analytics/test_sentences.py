"""analytics.sentences: the stored rows of an evaluated sentence, and the batch-1 thread policy."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch

from analytics import sentences, store
from analytics.schema import VIEWS
from models.runtime import single_sequence_threads


def _result() -> sentences.SentenceResult:
    rng = np.random.default_rng(0)
    tokens = ["the", "<unk>", "cat", "the"]
    states = {(layer, s): rng.normal(size=(len(tokens), 3)).astype(np.float32)
              for layer in (1, 0) for s in ("h", "c")}
    return sentences.SentenceResult("s1", "m1", "the zzz cat the", ["the", "zzz", "cat", "the"], tokens, states)


def _as_frame(res: sentences.SentenceResult) -> pd.DataFrame:
    """The rows as the DataFrame the Arrow table replaces would have held them, in the view's order."""
    T = len(res.tokens)
    parts = []
    for (layer, state), values in sorted(res.states.items()):
        H = values.shape[1]
        parts.append(pd.DataFrame({
            "sentence_id": res.sentence_id, "model_id": res.model_id,
            "position": np.repeat(np.arange(T, dtype=np.int32), H), "token": np.repeat(res.tokens, H),
            "layer": np.int32(layer), "state": state, "unit": np.tile(np.arange(H, dtype=np.int32), T),
            "value": values.astype(np.float32).reshape(-1)}))
    return pd.concat(parts, ignore_index=True)


def test_sentence_states_table_matches_rows_and_order():
    res = _result()
    got = store.conform(VIEWS["sentence_states"], sentences.sentence_states_table(res)).to_pandas()
    want = _as_frame(res)
    pd.testing.assert_frame_equal(got, want[got.columns.tolist()], check_dtype=False)
    order = list(VIEWS["sentence_states"].sort_by)
    assert got[order].equals(got[order].sort_values(order, kind="stable").reset_index(drop=True))


def test_saved_sentence_reads_back(tmp_path):
    res = _result()
    sentences.save_sentence(tmp_path, res, created_by="t")
    with store.connect(tmp_path) as con:
        df = con.execute("SELECT * FROM sentence_states ORDER BY layer, state, position, unit").df()
        meta = con.execute("SELECT text, created_by FROM sentences").fetchall()
    assert meta == [("the zzz cat the", "t")]
    want = _as_frame(res)
    assert len(df) == len(want) == 4 * 4 * 3
    np.testing.assert_array_equal(df["value"].to_numpy(np.float32), want["value"].to_numpy())
    assert df["token"].tolist() == want["token"].tolist()


def test_single_sequence_threads_sets_one_and_restores():
    old = torch.get_num_threads()
    with single_sequence_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == old

    seen = []

    def worker():
        for _ in range(20):
            with single_sequence_threads():
                seen.append(torch.get_num_threads())
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert set(seen) == {1} and torch.get_num_threads() == old   # concurrent callers never leave it at 1


def test_a_language_model_sentence_predicts_the_next_word(tmp_path):
    from models.config import ModelConfig
    from models.rnn import RecurrentModel
    from models.text import Vocab

    torch.manual_seed(0)
    vocab = Vocab.build(["the", "cat", "sat", "on", "the", "mat"] * 3, size=20)
    model = RecurrentModel(ModelConfig("lm", "lstm", 2, 8, 6, vocab_size=len(vocab))).eval()
    res = sentences.evaluate_sentence(model, vocab, "m1", "the cat sat on the")
    with torch.no_grad():
        logits, _ = model(torch.tensor(vocab.encode(res.tokens))[:, None])
    probs = torch.softmax(logits[-1, 0], -1)
    assert res.prediction == vocab.decode([int(probs.argmax())])[0]
    assert res.probability == pytest.approx(float(probs.max()), rel=1e-5)
    assert len(res.next_words) == 3 and [p for _, p in res.next_words] == sorted((p for _, p in res.next_words),
                                                                                 reverse=True)
    sentences.save_sentence(tmp_path, res)
    with store.connect(tmp_path) as con:
        assert con.execute("SELECT prediction, probability FROM sentences").fetchall() == [
            (res.prediction, pytest.approx(res.probability))]
