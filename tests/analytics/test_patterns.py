"""Pattern search with planted ground truth: units that switch on exactly after a given word."""
import numpy as np
import pandas as pd

from analytics import patterns, store
from analytics import token_states as ts
from analytics.schema import VIEWS
from tests.planted import planted_text

N, H, L, THETA = 6_000, 12, 4, 0.6
PLANTED = (3, 5, 7)


def _text(seed: int = 0):
    """Random words with 'trigger' planted every 20-40 tokens; the PLANTED units are 0.9 for exactly L steps
    after each trigger and below θ elsewhere (the others: noise that crosses θ often)."""
    return planted_text(N, H, L, THETA, PLANTED, [f"w{i}" for i in range(40)], gap=(20, 40), margin=0.05, seed=seed)


def test_one_planted_unit_is_found_after_every_trigger_and_nowhere_else():
    vocab, ids, values, want = _text()
    m = patterns.search(values[:, [3]], THETA, L, units=[3], off_before=True)
    assert sorted(m.start.tolist()) == want.tolist() and set((m.stop - m.start).tolist()) == {L}
    assert all(vocab[i] == "trigger" for i in ids[m.start - 1])
    # without "off before" the same spans (the unit is off before each of them anyway)
    assert sorted(patterns.search(values[:, [3]], THETA, L, units=[3]).start.tolist()) == want.tolist()


def test_a_length_off_by_more_than_the_tolerance_finds_nothing_and_within_it_everything():
    _, _, values, want = _text()
    assert len(patterns.search(values[:, [3]], THETA, L + 2, off_before=True)) == 0
    got = patterns.search(values[:, [3]], THETA, L + 1, off_before=True)
    assert sorted(got.start.tolist()) == want.tolist()
    assert len(patterns.search(values[:, [3]], THETA, L + 2, tolerance=2, off_before=True)) == len(want)


def test_noise_units_rank_partial_matches_below_full_ones():
    """U = the planted units plus two noise units (uniform in [-1, 1]: on 20% of the time, rarely for exactly
    L steps where the planted ones are): with min_units = 3 every trigger is found, and nothing else."""
    _, _, values, want = _text()
    U = [*PLANTED, 0, 1]
    m = patterns.search(values[:, U], THETA, L, units=U, min_units=3, off_before=True)
    planted = m.matched[:, :3].all(axis=1)
    assert sorted(m.start[planted].tolist()) == want.tolist()
    assert (m.score[planted] >= 3).all() and (np.diff(m.score) <= 0).all()   # best first
    assert (m.score[~planted] < 3).sum() == 0                                  # nothing else reaches 3 units


def test_a_unit_missing_at_some_triggers_ranks_them_lower():
    _, _, values, want = _text()
    values = values.copy()
    values[want[:5] + 1, 7] = 0.0                                              # unit 7 drops at 5 triggers
    m = patterns.search(values[:, list(PLANTED)], THETA, L, units=PLANTED, min_units=2, off_before=True)
    full = m.start[m.score == 3]
    assert sorted(full.tolist()) == sorted(want[5:].tolist())
    assert set(want[:5].tolist()) <= set(m.start[m.score == 2].tolist())
    assert m.score.tolist() == sorted(m.score.tolist(), reverse=True)


def test_spans_never_cross_documents():
    on = np.ones((10, 1), np.float32)
    docs = np.array([0] * 5 + [1] * 5)
    m = patterns.search(on, 0.5, 5, documents=docs, off_before=True, tolerance=0)
    assert m.start.tolist() == [0, 5] and m.stop.tolist() == [5, 10]


def test_proposal_and_summary():
    vocab, ids, values, want = _text()
    s = int(want[0])
    assert patterns.propose_units(values, s, s + L, THETA)[:3] and \
        set(PLANTED) <= set(patterns.propose_units(values, s, s + L, THETA))
    assert set(patterns.propose_units(values, s, s + L, THETA, off_before=True)) >= set(PLANTED)
    strict = patterns.propose_units(values, s, s + L, THETA, off_before=True, off_after=True)
    assert set(strict) >= set(PLANTED)
    assert set(strict) == {u for u in range(H) if (values[s:s + L, u] >= THETA).all()
                           and values[s - 1, u] < THETA and values[s + L, u] < THETA}
    found = patterns.search(values[:, strict], THETA, L, units=strict, off_before=True)
    assert s in found.start.tolist()                        # the selected span matches every proposed unit
    assert patterns.propose_units(values, s, s + L + 1, THETA, off_after=True) == []   # the planted units are off
    m = patterns.search(values[:, list(PLANTED)], THETA, L, units=PLANTED)
    tags = np.where(np.asarray(vocab) == "trigger", "NOUN", "X")
    summary = patterns.position_summary(m, ids, vocab, tags)
    before = summary[(summary["offset"] == -1)]
    top_word = before[before["kind"] == "word"].iloc[0]
    assert top_word["item"] == "trigger" and top_word["share"] == 1.0
    assert before[before["kind"] == "pos"].iloc[0]["item"] == "NOUN"
    assert set(summary["offset"]) == set(range(-1, L))


def test_planted_units_found_through_the_store(tmp_path):
    """The same ground truth written as token states and read back with SQL."""
    vocab, ids, values, want = _text()
    import torch
    col = ts.TokenStateCollector([(0, "h")], [(0, "h")], H, N, deltas=False)
    col.begin(None, 1, N)
    col.add(torch.from_numpy(values)[:, None, :], 0)
    row = {c.name: None for c in VIEWS["models"].columns}
    row.update(model_id="planted", name="planted", task="lm", cell="rnn", layers=1, hidden_size=H)
    with store.write_partition(tmp_path, "models", "planted") as w:
        w.write("models", pd.DataFrame([row]))
        ts.write_corpus_tokens(w, "planted", ids, vocab)
        col.write(w, "planted")
    con = store.connect(tmp_path)
    info = ts.info(con, "planted")
    series = ts.unit_series(con, "planted", 0, "h", PLANTED, info.tokens)
    m = patterns.search(series, THETA, L, units=PLANTED, off_before=True)
    assert sorted(m.start.tolist()) == want.tolist() and (m.score == 3).all()
    index = ts.UnitIndex.open(str(store.table_file(tmp_path, "models", "planted", "token_states")))
    direct = ts.read_units(index, 0, "h", [7, 3, 11], info.tokens)            # the page's path, same values
    assert np.array_equal(direct, ts.unit_series(con, "planted", 0, "h", [7, 3, 11], info.tokens), equal_nan=True)
    assert np.isnan(ts.read_units(index, 1, "h", [3], info.tokens)).all()       # no such layer
    words = ts.corpus_words(con, "planted")
    assert (words["word"].to_numpy()[m.start - 1] == "trigger").all()
