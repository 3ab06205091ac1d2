"""Ablation (analytics.ablation), against a planted model and independent references.

The references share nothing with the engine but the weights: a batch-1 loop of torch's own cells
(``nn.LSTMCell``/``nn.GRUCell``/``nn.RNNCell``) in float64, one run per unit set, that overwrites the units
after every step; the effects are then plain means of those losses.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from analytics import ablation, store
from models.config import ModelConfig
from models.rnn import RecurrentModel
from tests.analytics.ablation_reference import Reference
from tests.analytics.store_frames import models_df

V, TAGS = 23, ["NOUN" if i % 3 == 0 else ("VERB" if i % 3 == 1 else None) for i in range(23)]
WORD_CLUSTERS = {w: w % 4 for w in range(0, V, 2)}        # odd words are in no word cluster


def _model(task: str, cell: str, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    model = RecurrentModel(ModelConfig(task, cell, 2, 12, 8, vocab_size=V, num_classes=3))
    for p in model.parameters():          # larger weights than the default init: states that carry far
        nn.init.uniform_(p, -0.6, 0.6)
    return model.eval()


def _stream(n: int = 700, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ against the reference
@pytest.mark.parametrize(("cell", "layer", "state"), [("lstm", 0, "h"), ("lstm", 0, "c"), ("lstm", 1, "c"),
                                                      ("gru", 0, "h"), ("rnn", 1, "h")])
def test_column_losses_equal_a_step_loop_that_overwrites_the_units(cell, layer, state):
    model, stream = _model("lm", cell), _stream(400)
    ref = Reference(model)
    units = [1, 5, 6]
    mean = ref.mean([stream], layer, state)
    # 8 copies of the pair: 17 columns, cut into parts on a CPU with two threads; every copy must agree.
    cols = ablation.Columns.build(layer, state, 12, [units, units] * 8, [None, mean] * 8)
    got = ablation.lm_column_losses(model, stream, cols, chunk=64)    # 7 chunks: the state crosses 6 boundaries
    np.testing.assert_allclose(ablation.state_means(model, layer, state, stream=stream), mean, rtol=1e-4, atol=1e-6)
    base, zero = ref.losses(stream), ref.losses(stream, layer=layer, state=state, units=units)
    meaned = ref.losses(stream, layer=layer, state=state, units=units, fill=mean)
    np.testing.assert_allclose(got, np.stack([base] + [zero, meaned] * 8, axis=1), rtol=1e-4, atol=1e-5)
    assert abs((zero - base).mean()) > 1e-3                           # the ablation does change the losses


def _reference_row_deltas(ref, stream, units, **kw) -> dict[tuple[str, str], float]:
    """Δ mean loss (ablated − unablated) per target, by plain pandas group-bys of the reference losses."""
    frame = pd.DataFrame({"w": stream[1:].numpy(), "d": ref.losses(stream, units=units, **kw) - ref.losses(stream)})
    frame["tag"] = [TAGS[w] or "X" for w in frame["w"]]
    frame["wc"] = frame["w"].map(WORD_CLUSTERS)
    out = {("all", "all"): frame["d"].mean()}
    out.update({("pos", t): d for t, d in frame.groupby("tag")["d"].mean().items()})
    out.update({("word_cluster", str(int(c))): d for c, d in frame.dropna().groupby("wc")["d"].mean().items()})
    return out


def test_stored_ablation_rows_equal_the_reference_and_its_baseline(tmp_path):
    """Recompute one stored ablation (read back by SQL) by a plain step loop that zeroes the units."""
    model, stream = _model("lm", "lstm"), _stream(400)
    cluster_units = [0, 3, 4, 9]
    coclusters = pd.DataFrame({"layer": 1, "state": ["h"] * 12 + ["c"] * 12, "k": 3, "axis": "unit",
                               "item": list(range(12)) * 2, "cluster": [0, 1, 1, 0, 0, 2, 2, 2, 1, 0, 1, 2] * 2})
    coclusters = pd.concat([coclusters, pd.DataFrame({"layer": 1, "state": "h", "k": 3, "axis": "word",
                                                      "item": list(WORD_CLUSTERS), "cluster": [
                                                          (w // 2) % 3 for w in WORD_CLUSTERS]})])
    with store.write_partition(tmp_path, "models", "m") as w:
        w.write("models", models_df("m"))
        written = ablation.write_ablations(w, "m", model, ablation.LMText(stream, TAGS), coclusters, k=3, tokens=300,
                                           baseline_sets=6, seed=3)
    with store.connect(tmp_path) as con:
        rows = store.query(con, "SELECT * FROM ablations WHERE state = 'h' AND cluster = 0 AND target_kind <> 'pos'")
        assert store.query(con, "SELECT count(*) AS n FROM ablations")["n"][0] == written
        assert set(store.query(con, "SELECT DISTINCT state, cluster FROM ablations").itertuples(index=False)) == {
            (s, c) for s in "hc" for c in range(3)}
    assert (rows["units"] == "0,3,4,9").all() and (rows["n"] == 300).all() and (rows["mode"] == "zero").all()
    ref, part = Reference(model), stream[:300]
    word_clusters = {w: (w // 2) % 3 for w in WORD_CLUSTERS}
    frame = pd.DataFrame({"w": part[1:].numpy(), "d": ref.losses(part, layer=1, units=cluster_units)
                          - ref.losses(part)})
    want = {("all", "all"): frame["d"].mean()}
    want.update({("word_cluster", str(int(c))): d for c, d in
                 frame.assign(c=frame["w"].map(word_clusters)).dropna().groupby("c")["d"].mean().items()})
    assert len(rows) == len(want) == 4
    base = ref.losses(part)
    randoms = [ref.losses(part, layer=1, units=list(u)) - base for u in ablation.random_sets(12, 4, 6, seed=3)]
    for row in rows.itertuples():
        key = (row.target_kind, row.target)
        assert row.delta_mean == pytest.approx(want[key], rel=1e-4)
        sel = frame.index if key[0] == "all" else frame.index[frame["w"].map(word_clusters) == int(key[1])]
        r = np.array([d[sel].mean() for d in randoms])
        assert row.baseline_mean == pytest.approx(r.mean(), rel=1e-4, abs=1e-7)
        assert row.baseline_std == pytest.approx(r.std(ddof=1), rel=1e-3)
        assert row.z == pytest.approx((row.delta_mean - r.mean()) / r.std(ddof=1), rel=1e-3)
        assert row.p == pytest.approx((1 + (abs(r - r.mean()) >= abs(row.delta_mean - r.mean())).sum()) / 7)


def test_ablate_rows_per_target_equal_the_reference():
    model, stream = _model("lm", "gru", seed=4), _stream(500, seed=5)
    ref = Reference(model)
    units = (2, 7, 11)
    rows = ablation.ablate("m", model, ablation.LMText(stream, TAGS, WORD_CLUSTERS), 0, "h",
                           [ablation.Tested(units)], modes=("zero",), baseline_sets=4)
    want = _reference_row_deltas(ref, stream, list(units), layer=0)
    got = {(r.target_kind, r.target): r.delta_mean for r in rows.itertuples()}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4), key
    assert rows["k"].isna().all() and rows["cluster"].isna().all() and (rows["n"] == 500).all()
    assert rows.set_index(["target_kind", "target"]).loc[("all", "all"), "tokens"] == 499


def test_classifier_effects_equal_the_reference():
    model = _model("sentiment", "lstm", seed=6)
    gen = torch.Generator().manual_seed(7)
    docs = [torch.randint(0, V, (int(n),), generator=gen).tolist() for n in torch.randint(1, 25, (30,))]
    labels = [i % 3 for i in range(30)]
    ref = Reference(model)
    units = [0, 4, 8, 10]
    mean = ref.mean(docs, 1, "h")
    cols = ablation.Columns.build(1, "h", 12, [units, units], [None, mean])
    got = ablation.classifier_column_probs(model, docs, cols, batch_size=7)
    want = np.stack([[ref.probs(d), ref.probs(d, layer=1, units=units),
                      ref.probs(d, layer=1, units=units, fill=mean)] for d in docs])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    rows = ablation.ablate("s", model, ablation.Documents(docs, labels, ["a", "b", "c"]), 1, "h",
                           [ablation.Tested(tuple(units))], modes=("zero",), baseline_sets=3)
    zero = want[:, 1]
    pred0, pred1 = want[:, 0].argmax(1), zero.argmax(1)
    y = np.array(labels)
    by = rows.set_index(["target_kind", "target", "measure"])["delta_mean"]
    assert by[("all", "all", "accuracy")] == pytest.approx((pred1 == y).mean() - (pred0 == y).mean(), abs=1e-12)
    assert by[("all", "all", "flips")] == pytest.approx((pred1 != pred0).mean(), abs=1e-12)
    for c, name in enumerate("abc"):
        mine = y == c
        assert by[("label", name, "p_true")] == pytest.approx((zero[mine, c] - want[mine, 0, c]).mean(), rel=1e-4)
    assert (rows["n"] == 30).all()


# ------------------------------------------------------------------------------------------- a planted model
TRIGGER, NOUNS, OTHERS = 0, (1, 2), tuple(range(3, 10))
PLANTED = (0, 1)


def _planted_model() -> RecurrentModel:
    """One LSTM layer of 24 units over one-hot embeddings.  Units 0 and 1 are +0.76 right after the trigger
    word and -0.76 otherwise, and nothing but the output rows of the two nouns reads them; the other units
    respond to every word but the trigger, and no noun's output row reads them.  Nouns follow the trigger
    and only it: units 0 and 1 carry the only information that predicts a noun."""
    H, E = 24, 10
    model = RecurrentModel(ModelConfig("lm", "lstm", 1, H, E, vocab_size=E))
    gen = torch.Generator().manual_seed(0)
    rest = list(range(2, H))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight.copy_(torch.eye(E))
        w_ih, w_hh, b = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0, model.rnn.bias_ih_l0
        i, f, g, o = (slice(k * H, (k + 1) * H) for k in range(4))
        b[i], b[o] = 10.0, 10.0                                         # input and output gates open
        b[f.start:f.start + 2] = -10.0                                  # the planted units keep no memory
        w_ih[g.start + 0, TRIGGER] = w_ih[g.start + 1, TRIGGER] = 6.0
        b[g.start:g.start + 2] = -3.0                                   # g = tanh(±3)
        for blk in (i, f, g, o):                                        # the other units: every word but the
            rows = [blk.start + u for u in rest]                        # trigger, and each other
            w_ih[rows, 3:] = torch.rand(len(rows), E - 3, generator=gen) * 2 - 1
            w_hh[np.ix_(rows, rest)] = torch.rand(len(rows), len(rest), generator=gen) * 0.6 - 0.3
        model.head.weight[list(NOUNS), 0] = model.head.weight[list(NOUNS), 1] = 6.0
        model.head.weight[np.ix_(list(OTHERS), rest)] = torch.rand(len(OTHERS), len(rest), generator=gen) - 0.5
    return model.eval()


def _planted_text(n: int = 3000) -> torch.Tensor:
    """A noun (1 or 2) after every trigger (0), never elsewhere; after anything else the trigger or another word."""
    rng = np.random.default_rng(1)
    out = [TRIGGER]
    while len(out) < n:
        out.append(int(rng.choice(NOUNS)) if out[-1] == TRIGGER else int(rng.choice((TRIGGER, *OTHERS))))
    return torch.tensor(out)


def test_planted_units_matter_for_their_class_and_random_sets_do_not():
    model, stream = _planted_model(), _planted_text()
    tags = ["DET", "NOUN", "NOUN"] + ["VERB"] * 7
    rows = ablation.ablate("planted", model, ablation.LMText(stream, tags), 0, "h", [ablation.Tested(PLANTED)],
                           seed=0)
    noun = rows[(rows["target_kind"] == "pos") & (rows["target"] == "NOUN")].set_index("mode")
    for mode in ablation.MODES:
        assert noun.loc[mode, "delta_mean"] > 1.0                       # nats: log 2 -> over 1.7
        assert noun.loc[mode, "z"] > 10 and noun.loc[mode, "p"] == pytest.approx(1 / 21)
    # Every random set, one by one: none comes near, and those that miss both planted units do nothing.
    randoms = ablation.random_sets(24, 2, 20, seed=0)
    cols = ablation.Columns.build(0, "h", 24, [PLANTED, *randoms], [None] * 21)
    losses = ablation.lm_column_losses(model, stream, cols)
    nouns = np.isin(stream[1:].numpy(), NOUNS)
    delta = losses[nouns].mean(axis=0) - losses[nouns, 0].mean()
    assert delta[1] == pytest.approx(noun.loc["zero", "delta_mean"], rel=1e-6)
    assert (delta[2:] < delta[1] / 10).all()
    missing = [j + 2 for j, r in enumerate(randoms) if not set(r) & set(PLANTED)]
    assert len(missing) >= 15 and (np.abs(delta[missing]) < 0.01).all()
    assert losses[nouns, 0].mean() < 0.8                                # the unablated model predicts them well


# ------------------------------------------------------------------------------------ baseline and requests
def test_z_and_p_as_documented():
    mean, std, z, p = ablation.baseline(5.0, np.array([0.0, 1.0, 2.0, 3.0]))
    assert (mean, std) == (1.5, pytest.approx(np.std([0, 1, 2, 3], ddof=1)))
    assert z == pytest.approx(3.5 / std) and p == pytest.approx(1 / 5)    # no random set as far: (1 + 0) / 5
    assert ablation.baseline(-2.0, np.array([0.0, 1.0, 2.0, 3.0]))[3] == pytest.approx(1 / 5)   # two-sided
    assert ablation.baseline(3.0, np.array([0.0, 1.0, 2.0, 3.0]))[3] == pytest.approx(3 / 5)    # 0 and 3 tie
    assert ablation.baseline(1.0, np.array([1.0, 1.0, 1.0]))[2] is None                        # no spread: no z


def test_random_sets_and_results_are_seeded_and_reproducible():
    a, b = ablation.random_sets(650, 40, 20, seed=0), ablation.random_sets(650, 40, 20, seed=0)
    assert all((x == y).all() for x, y in zip(a, b))
    assert all(len(set(x.tolist())) == 40 and x.min() >= 0 and x.max() < 650 for x in a)
    assert any((x != y).any() for x, y in zip(a, ablation.random_sets(650, 40, 20, seed=1)))
    model, stream = _model("lm", "lstm"), _stream(200)
    run = [ablation.ablate("m", model, ablation.LMText(stream, TAGS), 1, "c", [ablation.Tested((1, 2, 3))],
                           baseline_sets=5, seed=9) for _ in range(2)]
    pd.testing.assert_frame_equal(run[0], run[1])


@pytest.mark.parametrize(("kw", "message"), [
    (dict(layer=2), "layer must be 0 .. 1"), (dict(state="f"), "state must be"),
    (dict(tested=[ablation.Tested(())]), "1 .. 11 distinct units"),
    (dict(tested=[ablation.Tested((3, 3))]), "distinct units"),
    (dict(tested=[ablation.Tested((0, 12))]), "units must lie in 0 .. 11"),
    (dict(modes=("zero", "noise")), "modes must be"), (dict(baseline_sets=1), "baseline_sets must be 2"),
    (dict(prefix=1), "prefix must be"), (dict(tested=[ablation.Tested((1,))] * 30, baseline_sets=20), "side by side"),
])
def test_bad_requests_say_what_to_change(kw, message):
    model = _model("lm", "gru")
    args = dict(layer=0, state="h", tested=[ablation.Tested((1,))]) | kw
    layer, state, tested = args.pop("layer"), args.pop("state"), args.pop("tested")
    with pytest.raises(ValueError, match=message):
        ablation.ablate("m", model, ablation.LMText(_stream(50), TAGS), layer, state, tested, **args)
    with pytest.raises(ValueError, match="needs LMText"):
        ablation.ablate("m", model, ablation.Documents([[1]], [0], ["a"]), 0, "h", [ablation.Tested((1,))])


# ------------------------------------------------------------------------------- a stored model, by command
def test_linked_cluster_is_the_strongest_edge_of_the_tag_cloud(tiny_store):
    with store.connect(tiny_store) as con:
        clusters = store.query(con, "SELECT axis, item, cluster FROM coclusters WHERE model_id = 'tiny-lstm' "
                                    "AND layer = 1 AND state = 'h' AND k = 3")
        resp = store.query(con, "SELECT word_id, unit, mean FROM word_responses WHERE model_id = 'tiny-lstm' "
                                "AND layer = 1 AND state = 'h'")
    words = clusters[clusters["axis"] == "word"].rename(columns={"item": "word_id", "cluster": "wc"})
    units = clusters[clusters["axis"] == "unit"].rename(columns={"item": "unit", "cluster": "uc"})
    tags = [None] * 1000
    for w in words["word_id"]:
        tags[w] = "NOUN" if w % 3 else "VERB"
    # The reference: block means of the signed responses by a pandas join, the tag cloud by counting.
    blocks = resp.merge(words, on="word_id").merge(units, on="unit").groupby(["wc", "uc"])["mean"].mean()
    cloud = words.assign(noun=[tags[w] == "NOUN" for w in words["word_id"]]).groupby("wc")["noun"].sum().idxmax()
    strongest = blocks.loc[cloud].abs().idxmax()
    link = ablation.linked_unit_cluster(tiny_store, "tiny-lstm", 1, "h", 3, "NOUN", tags)
    assert (link.word_cluster, link.unit_cluster) == (cloud, strongest)
    assert link.edge == pytest.approx(blocks.loc[(cloud, strongest)], rel=1e-6)
    assert link.units == tuple(sorted(units.loc[units["uc"] == strongest, "unit"]))


@pytest.mark.parametrize("model_id", ["tiny-lstm", "tiny-gru"])
def test_the_command_ablates_a_stored_cluster(tiny_store, fixtures, model_id, capsys):
    from analytics.ablation.__main__ import main

    corpus = str(fixtures / {"tiny-lstm": "ptb", "tiny-gru": "reviews.csv"}[model_id])   # what the store was built of
    code = main(["--store", str(tiny_store), "--model", model_id, "--corpus", corpus, "--cluster", "0", "--k", "3",
                 "--sets", "5", "--threads", "1", "--prefix", "300"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "unit cluster 0" in err and " p" in out.splitlines()[0]
    kinds = {"tiny-lstm": ("all", "pos", "word_cluster"), "tiny-gru": ("all", "label")}[model_id]
    assert all(any(line.split()[1] == kind for line in out.splitlines()[1:]) for kind in kinds)
    assert main(["--store", str(tiny_store), "--model", model_id, "--corpus", corpus, "--cluster", "9",
                 "--k", "3"]) == 2
    assert "pick one of them" in capsys.readouterr().err
    assert main(["--store", str(tiny_store), "--model", "nope", "--units", "1,2"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_the_precomputed_prefix_shrinks_with_the_work_of_a_token():
    small, big = _model("lm", "lstm"), RecurrentModel(ModelConfig("lm", "lstm", 2, 650, 650, vocab_size=10_000))
    assert ablation.precompute_tokens(big, 254) < ablation.precompute_tokens(big, 22) < ablation.precompute_tokens(
        small, 254)
    assert 200 <= ablation.precompute_tokens(big, 254) <= 1000            # the 2x650's +30% (docs/ablation.md)

    class Sink:
        def __init__(self):
            self.frames = []

        def write(self, table, frame):
            self.frames.append((table, frame))

    coclusters = pd.DataFrame({"layer": 1, "state": "h", "k": 6, "axis": "unit", "item": range(12),
                               "cluster": [0, 1] * 6})
    sink = Sink()
    assert ablation.write_ablations(sink, "m", small, ablation.LMText(_stream(300), TAGS), coclusters,
                                    baseline_sets=3) == len(sink.frames[0][1])
    assert sink.frames[0][0] == "ablations" and (sink.frames[0][1]["n"] == 300).all()     # all of a short split
    assert set(sink.frames[0][1]["cluster"]) == {0, 1} and set(sink.frames[0][1]["state"]) == {"h"}


def test_an_analysis_stores_the_ablation_of_every_last_layer_cluster(tiny_store, tmp_path, fixtures, capsys):
    """The analysis precomputes ablations: each unit cluster of the last layer's h and c at the default k; the
    losses and ablations stages each show a terminal bar, as the trace and statistics do."""
    import shutil

    from analytics.ablation import DEFAULT_K
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.corpora import load_corpus

    root = tmp_path / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    analyze_model("tiny-lstm", root, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=DEFAULT_K,
                                                     gradient_k=0, max_tokens=2000),
                  corpus=load_corpus(str(fixtures / "ptb")), show_progress=True)
    bars = capsys.readouterr().err
    for stage in ("trace", "statistics", "losses", "ablations"):
        assert f"tiny-lstm: {stage}" in bars, stage
    with store.connect(root) as con:
        rows = store.query(con, "SELECT layer, state, k, cluster, target_kind, baseline_sets FROM ablations "
                                "WHERE model_id = 'tiny-lstm' AND target_kind = 'all'")
        clusters = store.query(con, "SELECT state, count(DISTINCT cluster) AS n FROM coclusters WHERE model_id = "
                                    "'tiny-lstm' AND layer = 1 AND k = ? AND axis = 'unit' GROUP BY state", [DEFAULT_K])
    assert set(rows["layer"]) == {1} and set(rows["k"]) == {DEFAULT_K} and set(rows["baseline_sets"]) == {20}
    for state, n in zip(clusters["state"], clusters["n"], strict=True):
        assert set(rows.loc[rows["state"] == state, "cluster"]) == set(range(n)) or n == 1
