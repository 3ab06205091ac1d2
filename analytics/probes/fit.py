"""Linear POS probes with their controls (scikit-learn), and the rows of ``probes`` and ``probe_units``.

For one (layer, state): a multinomial logistic regression (standardised units, L2, lbfgs) trained on the
training sentences' states predicts each test token's gold universal POS tag.  Beside its accuracy:

- ``majority``: the accuracy of always answering the training set's most frequent tag;
- ``control_accuracy``: the same probe trained and tested on a *control task* (Hewitt & Liang 2019): every word
  type (the word id the model reads) gets one fixed tag drawn at random from the sample's tag distribution, so
  only a probe that memorises word identity can do well; selectivity = accuracy − control_accuracy;
- ``untrained_accuracy``: the same probe on the states of the same architecture with its initial weights.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .sample import ProbeSample

__all__ = ["TASK", "TOP_TAGS", "PROBE", "ProbeScores", "fit_probe", "control_tags", "probe_rows"]

TASK = "upos"
#: Tags listed per unit in ``probe_units``.
TOP_TAGS = 3
#: The probe's settings (stored in ``params``).
PROBE = {"C": 1.0, "max_iter": 50, "tol": 1e-3, "solver": "lbfgs", "standardize": True}


@dataclass
class ProbeScores:
    accuracy: float
    iterations: int = 0               # lbfgs iterations (PROBE["max_iter"]: stopped there, not converged to tol)
    coef: np.ndarray | None = None    # [classes, H] on standardised units
    classes: np.ndarray | None = None


def fit_probe(X: np.ndarray, y: np.ndarray, train: np.ndarray, keep_coef: bool = False) -> ProbeScores:
    """Train on rows ``train`` of X [P, H] (labels y [P]), return the accuracy on the other rows."""
    Xtr, Xte = X[train].astype(np.float32), X[~train].astype(np.float32)
    if len(np.unique(y[train])) < 2:                       # one class: the probe is the majority answer
        return ProbeScores(float(np.mean(y[~train] == y[train][0])))
    scaler = StandardScaler().fit(Xtr)
    clf = LogisticRegression(C=PROBE["C"], max_iter=PROBE["max_iter"], tol=PROBE["tol"], solver=PROBE["solver"])
    with warnings.catch_warnings():      # a probe stopped at max_iter says so in params ("iterations")
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(Xtr), y[train])
    acc = float(clf.score(scaler.transform(Xte), y[~train]))
    return ProbeScores(acc, int(np.max(clf.n_iter_)), clf.coef_ if keep_coef else None,
                       clf.classes_ if keep_coef else None)


def control_tags(sample: ProbeSample, seed: int) -> np.ndarray:
    """[P] the control task's labels: one random tag per word type, drawn from the sample's tag distribution."""
    rng = np.random.default_rng(seed)
    types, inverse = np.unique(sample.words, return_inverse=True)
    freq = np.bincount(sample.tags, minlength=len(sample.tag_names)) / len(sample.tags)
    return rng.choice(len(sample.tag_names), size=len(types), p=freq)[inverse]


def _majority(y: np.ndarray, train: np.ndarray) -> float:
    top = np.bincount(y[train]).argmax()
    return float(np.mean(y[~train] == top))


def _unit_rows(scores: ProbeScores, tag_names: list[str]) -> pd.DataFrame:
    """Per unit, the TOP_TAGS tags whose probe weight on it is highest (rank 1 = highest)."""
    coef, classes = scores.coef, scores.classes
    if coef is None:
        return pd.DataFrame(columns=["unit", "tag", "weight", "rank"])
    if coef.shape[0] == 1:                                  # binary: sklearn keeps one row, for classes[1]
        coef, classes = np.vstack([-coef, coef]), classes
    top = min(TOP_TAGS, len(classes))
    order = np.argsort(-coef, axis=0, kind="stable")[:top]   # [top, H] class rows
    H = coef.shape[1]
    units = np.tile(np.arange(H), top)
    rows = order.reshape(-1)
    return pd.DataFrame({"unit": units.astype(np.int32), "tag": [tag_names[c] for c in classes[rows]],
                         "weight": coef[rows, units].astype(np.float32),
                         "rank": np.repeat(np.arange(1, top + 1), H).astype(np.int32)})


def probe_rows(key: tuple[int, str], trained: np.ndarray, untrained: np.ndarray, sample: ProbeSample,
               seed: int, params: dict) -> tuple[dict, pd.DataFrame]:
    """(the ``probes`` row, the ``probe_units`` rows) of one (layer, state), without the model id."""
    y, train = sample.tags, sample.train
    real = fit_probe(trained, y, train, keep_coef=True)
    control = fit_probe(trained, control_tags(sample, seed), train)
    fresh = fit_probe(untrained, y, train)
    row = {"layer": key[0], "state": key[1], "task": TASK, "n_train": int(train.sum()), "n_test": int((~train).sum()),
           "accuracy": real.accuracy, "majority": _majority(y, train), "control_accuracy": control.accuracy,
           "untrained_accuracy": fresh.accuracy, "seed": seed,
           "params": json.dumps({**params, "iterations": {"probe": real.iterations, "control": control.iterations,
                                                          "untrained": fresh.iterations}}, sort_keys=True)}
    units = _unit_rows(real, sample.tag_names)
    units.insert(0, "state", key[1])
    units.insert(0, "layer", key[0])
    return row, units
