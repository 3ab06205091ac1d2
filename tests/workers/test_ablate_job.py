"""On-demand ablation jobs ("Test these units") through real Redis and real `celery worker` processes.

The rows the worker adds to ``ablations`` are recomputed by the plain step loop of the ablation tests (torch's
own cells in float64, the units zeroed after every step): no number is taken from the engine under test.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from jobhelpers import job_settings, wait_for

from analytics import ablation, store
from tests.analytics.ablation_reference import Reference
from workers import client, records
from workers.errors import JobValidationError

MODEL = "tiny-lstm"
PREFIX_TOKENS, SETS = 300, 5


@pytest.fixture(scope="module")
def analysed(redis_store, tiny_store, fixtures):
    """tiny-lstm (2 x 8 LSTM) in the workers' store, analysed up to k = 6 (so its last layer's chips at k = 6
    have their precomputed ablations)."""
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.corpora import load_corpus

    (redis_store / "checkpoints").mkdir(exist_ok=True)
    shutil.copy(tiny_store / "checkpoints" / f"{MODEL}.pt", redis_store / "checkpoints" / f"{MODEL}.pt")
    analyze_model(MODEL, redis_store, AnalysisOptions(batch_size=4, top_words=30, min_count=2, k_max=6,
                                                      gradient_k=0, max_tokens=2000),
                  corpus=load_corpus(str(fixtures / "ptb")), show_progress=False)
    return ablation.load_stored(redis_store, MODEL)


def _rows(root, who: str | None) -> pd.DataFrame:
    where = "requested_by IS NULL" if who is None else "requested_by = ?"
    with store.connect(root) as con:
        return store.query(con, f"SELECT * FROM ablations WHERE model_id = ? AND {where} ORDER BY layer, state, "
                                "cluster, target_kind, target", [MODEL] + ([] if who is None else [who]))


def _run(settings, prefix, root, who: str, request: dict) -> records.JobRecord:
    rec = client.submit_ablate(settings, request, submitted_by=who, job_settings=job_settings(prefix))
    assert rec.kind == "ablate" and records.read_job(root, rec.job_id).status in ("queued", "running", "done")

    def finished():
        r = records.read_job(root, rec.job_id)
        return r if r.status in records.TERMINAL else None
    final = wait_for(finished, 120, f"ablation job {rec.job_id}")
    assert final.status == "done", final.error
    return final


def _reference(stored, units: tuple[int, ...]) -> dict[tuple[str, str], tuple[float, np.ndarray]]:
    """(Δ mean loss of the units, the random sets' Δ) per target, from a step loop that zeroes the units."""
    ref, part = Reference(stored.model), stored.data.stream[:PREFIX_TOKENS]
    base = ref.losses(part)
    words = part[1:].numpy()
    clusters = ablation.word_clusters(stored.coclusters, 1, "h", 6)
    frame = pd.DataFrame({"d": ref.losses(part, layer=1, units=list(units)) - base,
                          "pos": [stored.tags[w] or "X" for w in words],
                          "wc": [str(clusters[w]) if w in clusters else None for w in words]})
    randoms = np.stack([ref.losses(part, layer=1, units=list(r)) - base
                        for r in ablation.random_sets(8, len(units), SETS, seed=0)])
    out = {("all", "all"): (frame["d"].mean(), randoms.mean(axis=1))}
    for kind in ("pos", "wc"):
        for target, idx in frame.groupby(kind).groups.items():
            pos = frame.index.get_indexer(idx)
            out[("pos" if kind == "pos" else "word_cluster", target)] = (frame["d"].iloc[pos].mean(),
                                                                          randoms[:, pos].mean(axis=1))
    return out


def test_an_ablation_job_adds_rows_for_who_asked_that_a_step_loop_recomputes(workers, redis_settings, redis_store,
                                                                             prefix, analysed):
    chips = ablation.unit_clusters(analysed.coclusters, 1, "h", 6)
    chip, units = max(chips.items(), key=lambda item: len(item[1]))
    precomputed = _rows(redis_store, None)
    assert len(precomputed) > 0
    request = {"model_id": MODEL, "layer": 1, "state": "h", "units": list(units), "k": 6, "cluster": chip,
               "prefix": PREFIX_TOKENS, "baseline_sets": SETS}
    final = _run(redis_settings, prefix, redis_store, "ann", request)
    assert final.stage == "done" and final.progress == 1.0 and final.detail["result"]["tokens"] == PREFIX_TOKENS
    rows = _rows(redis_store, "ann")
    assert len(rows) == final.detail["result"]["rows"] > 2
    assert (rows["units"] == ",".join(map(str, units))).all() and (rows["n"] == PREFIX_TOKENS).all()
    assert (rows["k"] == 6).all() and (rows["cluster"] == chip).all() and (rows["mode"] == "zero").all()
    want = _reference(analysed, units)
    assert {(r.target_kind, r.target) for r in rows.itertuples()} == set(want)
    for r in rows.itertuples():
        delta, randoms = want[(r.target_kind, r.target)]
        assert r.delta_mean == pytest.approx(delta, rel=1e-4, abs=1e-6), (r.target_kind, r.target)
        assert r.baseline_mean == pytest.approx(randoms.mean(), rel=1e-4, abs=1e-6)
        assert r.baseline_std == pytest.approx(randoms.std(ddof=1), rel=1e-3, abs=1e-6)
    # The analysis's own rows are untouched; asking again replaces ann's rows; bob's rows are his own.
    pd.testing.assert_frame_equal(_rows(redis_store, None), precomputed)
    _run(redis_settings, prefix, redis_store, "ann", request)
    pd.testing.assert_frame_equal(_rows(redis_store, "ann").drop(columns="requested_by"),
                                  rows.drop(columns="requested_by"), check_exact=False, rtol=1e-9)
    one = {**request, "units": [units[0]], "cluster": None}
    _run(redis_settings, prefix, redis_store, "bob", one)
    bob = _rows(redis_store, "bob")
    assert (bob["units"] == str(units[0])).all() and bob["cluster"].isna().all() and len(_rows(redis_store, "ann")) \
        == len(rows)


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"layer": 2}, "layer", "must be 0 .. 1"), ({"state": "f"}, "state", "must be h or c"),
    ({"units": [3, 3]}, "units", "named twice"), ({"units": [0, 99]}, "units", "must lie in 0 .. 7"),
    ({"units": list(range(8))}, "units", "at most 7"), ({"units": "1,2"}, "units", "a list"),
    ({"prefix": -5}, "prefix", "between 0 and"), ({"baseline_sets": 1}, "baseline_sets", "between 2 and 200"),
    ({"model_id": "nope"}, "model_id", "not analysed"), ({"cluster": 1, "k": None}, "cluster", "needs its k"),
    ({"modes": ["half"]}, "modes", "zero, mean"), ({"layer": True}, "layer", "whole number"),
    ({"extra": 1}, "form", "unknown field"),
])
def test_a_bad_request_is_refused_field_by_field_and_queues_nothing(redis_settings, redis_store, prefix, analysed,
                                                                     change, field, message):
    request = {"model_id": MODEL, "layer": 1, "state": "h", "units": [1, 2], "k": 6, **change}
    before = len(records.list_jobs(redis_store))
    with pytest.raises(JobValidationError) as e:
        client.submit_ablate(redis_settings, {k: v for k, v in request.items() if v is not None},
                             submitted_by="ann", job_settings=job_settings(prefix))
    assert message in e.value.errors[field], e.value.errors
    assert len(records.list_jobs(redis_store)) == before


def test_the_command_line_queues_an_ablation_and_follows_it(workers, redis_settings, redis_store, prefix, analysed,
                                                            monkeypatch, capsys):
    from app.cli import main

    for key, value in {"RNNVIS_STORE": str(redis_store), "RNNVIS_BROKER_URL": redis_settings.broker_url,
                       "RNNVIS_BROKER_PREFIX": prefix, "RNNVIS_USER": "cli-carol"}.items():
        monkeypatch.setenv(key, value)
    assert main(["jobs", "ablate", MODEL, "--layer", "0", "--units", "1,2,3", "--prefix", "200",
                 "--baseline-sets", "3", "--wait"]) == 0
    rows = _rows(redis_store, "cli-carol")
    assert len(rows) > 0 and (rows["units"] == "1,2,3").all() and rows["k"].isna().all() and (rows["n"] == 200).all()
    assert main(["jobs", "ablate", MODEL, "--layer", "0", "--units", "1,99"]) == 2
    assert "error: units: units must lie in 0 .. 7" in capsys.readouterr().err
