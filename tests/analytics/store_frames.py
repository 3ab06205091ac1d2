"""Frames and helpers for the store's tests (tests/analytics/test_store*.py), importable by their child
processes too (``PYTHONPATH`` = the repository)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import store

REPO = Path(__file__).resolve().parents[2]

# The public contract, as docs/store-schema.md states it (columns may only be appended).
CONTRACT: dict[str, list[tuple[str, str]]] = {
    "models": [
        ("model_id", "VARCHAR"), ("name", "VARCHAR"), ("task", "VARCHAR"), ("cell", "VARCHAR"),
        ("layers", "INTEGER"), ("hidden_size", "INTEGER"), ("embed_size", "INTEGER"),
        ("vocab_size", "INTEGER"), ("corpus", "VARCHAR"), ("params", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("created_by", "VARCHAR"), ("valid_loss", "DOUBLE"),
        ("valid_perplexity", "DOUBLE"), ("valid_accuracy", "DOUBLE"), ("test_loss", "DOUBLE"),
        ("test_perplexity", "DOUBLE"), ("test_accuracy", "DOUBLE"), ("analyzed_tokens", "BIGINT"),
        ("analysis_split", "VARCHAR"), ("states", "VARCHAR"),
    ],
    "training_metrics": [
        ("model_id", "VARCHAR"), ("epoch", "INTEGER"), ("split", "VARCHAR"), ("loss", "DOUBLE"),
        ("perplexity", "DOUBLE"), ("accuracy", "DOUBLE"), ("tokens_per_s", "DOUBLE"), ("wall_s", "DOUBLE"),
    ],
    "vocab": [
        ("model_id", "VARCHAR"), ("word_id", "INTEGER"), ("word", "VARCHAR"), ("freq", "BIGINT"),
        ("pos", "VARCHAR"),
    ],
    "word_responses": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("word_id", "INTEGER"),
        ("word", "VARCHAR"), ("unit", "INTEGER"), ("n", "INTEGER"), ("mean", "FLOAT"), ("std", "FLOAT"),
        ("q10", "FLOAT"), ("q25", "FLOAT"), ("q50", "FLOAT"), ("q75", "FLOAT"), ("q90", "FLOAT"),
    ],
    "coclusters": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("k", "INTEGER"),
        ("axis", "VARCHAR"), ("item", "INTEGER"), ("cluster", "INTEGER"),
    ],
    "projections": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("axis", "VARCHAR"),
        ("method", "VARCHAR"), ("item", "INTEGER"), ("x", "FLOAT"), ("y", "FLOAT"), ("seed", "INTEGER"),
        ("params", "VARCHAR"),
    ],
    "gradient_flow": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("distance", "INTEGER"), ("grad_norm", "DOUBLE"),
        ("grad_norm_std", "DOUBLE"),
    ],
    "sentences": [
        ("sentence_id", "VARCHAR"), ("model_id", "VARCHAR"), ("text", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("created_by", "VARCHAR"), ("prediction", "VARCHAR"),
        ("probability", "DOUBLE"),
    ],
    "sentence_states": [
        ("sentence_id", "VARCHAR"), ("model_id", "VARCHAR"), ("position", "INTEGER"), ("token", "VARCHAR"),
        ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("value", "FLOAT"),
    ],
    "corpus_tokens": [
        ("model_id", "VARCHAR"), ("position", "INTEGER"), ("document", "INTEGER"), ("word_id", "INTEGER"),
        ("word", "VARCHAR"),
    ],
    "token_states": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"),
        ("position", "INTEGER"), ("value", "FLOAT"),
    ],
    "unit_contexts": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("kind", "VARCHAR"),
        ("rank", "INTEGER"), ("position", "INTEGER"), ("value", "FLOAT"),
    ],
    "unit_summaries": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("n", "BIGINT"),
        ("mean", "DOUBLE"), ("std", "DOUBLE"), ("top_words", "VARCHAR"), ("bottom_words", "VARCHAR"),
        ("top_tag", "VARCHAR"), ("top_tag_z", "DOUBLE"), ("bottom_tag", "VARCHAR"), ("bottom_tag_z", "DOUBLE"),
        ("description", "VARCHAR"),
    ],
    "unit_tags": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("tag", "VARCHAR"),
        ("n", "BIGINT"), ("mean", "DOUBLE"), ("std", "DOUBLE"), ("z", "DOUBLE"),
    ],
    "word_loss": [
        ("model_id", "VARCHAR"), ("word_id", "INTEGER"), ("word", "VARCHAR"), ("n", "BIGINT"),
        ("nll_mean", "DOUBLE"), ("nll_std", "DOUBLE"),
    ],
    "token_loss": [("model_id", "VARCHAR"), ("position", "INTEGER"), ("word_id", "INTEGER"), ("nll", "FLOAT")],
    "class_metrics": [
        ("model_id", "VARCHAR"), ("label", "VARCHAR"), ("n", "BIGINT"), ("accuracy", "DOUBLE"),
        ("mean_p_true", "DOUBLE"),
    ],
    "class_confusion": [("model_id", "VARCHAR"), ("label", "VARCHAR"), ("predicted", "VARCHAR"), ("n", "BIGINT")],
    "ablations": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("k", "INTEGER"), ("cluster", "INTEGER"),
        ("units", "VARCHAR"), ("mode", "VARCHAR"), ("target_kind", "VARCHAR"), ("target", "VARCHAR"),
        ("n", "BIGINT"), ("delta_mean", "DOUBLE"), ("baseline_mean", "DOUBLE"), ("baseline_std", "DOUBLE"),
        ("z", "DOUBLE"), ("p", "DOUBLE"), ("measure", "VARCHAR"), ("tokens", "BIGINT"), ("base_mean", "DOUBLE"),
        ("baseline_sets", "INTEGER"), ("seed", "INTEGER"), ("requested_by", "VARCHAR"),
    ],
    "probes": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("task", "VARCHAR"),
        ("n_train", "INTEGER"), ("n_test", "INTEGER"), ("accuracy", "DOUBLE"), ("majority", "DOUBLE"),
        ("control_accuracy", "DOUBLE"), ("untrained_accuracy", "DOUBLE"), ("seed", "INTEGER"), ("params", "VARCHAR"),
    ],
    "probe_units": [
        ("model_id", "VARCHAR"), ("layer", "INTEGER"), ("state", "VARCHAR"), ("unit", "INTEGER"), ("tag", "VARCHAR"),
        ("weight", "FLOAT"), ("rank", "INTEGER"),
    ],
    "jobs": [
        ("job_id", "VARCHAR"), ("kind", "VARCHAR"), ("model_id", "VARCHAR"), ("status", "VARCHAR"),
        ("progress", "DOUBLE"), ("submitted_by", "VARCHAR"), ("submitted_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"), ("error", "VARCHAR"), ("params", "VARCHAR"), ("detail", "VARCHAR"),
        ("started_at", "TIMESTAMP"), ("heartbeat_at", "TIMESTAMP"), ("worker", "VARCHAR"),
        ("attempts", "INTEGER"), ("stage", "VARCHAR"),
    ],
}

FLOATS = ["mean", "std", "q10", "q25", "q50", "q75", "q90"]


# --------------------------------------------------------------------------- frame builders


def models_df(model_id: str, name: str = "tiny lstm") -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                model_id=model_id, name=name, task="lm", cell="lstm", layers=2, hidden_size=4,
                embed_size=3, vocab_size=5, corpus="tiny", params=json.dumps({"lr": 0.1}),
                created_at=pd.Timestamp("2024-05-01 12:00:00", tz="UTC"), created_by="ann",
                valid_loss=4.5, valid_perplexity=90.0, valid_accuracy=None, test_loss=4.6,
                test_perplexity=99.5, test_accuracy=None, analyzed_tokens=12_345,
                analysis_split="valid", states="h,c",
            )
        ]
    )


def responses_df(model_id: str, layer: int = 0, state: str = "h", words: int = 5, units: int = 4,
                 value: float | None = None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    word_id = np.repeat(np.arange(words), units)
    df = pd.DataFrame(
        dict(
            model_id=model_id, layer=layer, state=state, word_id=word_id,
            word=[f"w{i}" for i in word_id], unit=np.tile(np.arange(units), words),
            n=np.repeat(np.arange(1, words + 1), units),
        )
    )
    for c in FLOATS:
        df[c] = np.float32(value) if value is not None else rng.standard_normal(len(df)).astype(np.float32)
    return df


def full_model(root: Path, model_id: str, **kw) -> dict[str, pd.DataFrame]:
    frames = {
        "models": models_df(model_id, **kw),
        "training_metrics": pd.DataFrame(
            dict(model_id=model_id, epoch=[1, 1, 2, 2], split=["train", "valid"] * 2,
                 loss=[5.0, 4.9, 4.6, 4.5], perplexity=[148.4, 134.3, 99.5, 90.0],
                 accuracy=[None] * 4, tokens_per_s=1000.0, wall_s=1.5)
        ),
        "vocab": pd.DataFrame(
            dict(model_id=model_id, word_id=range(5), word=[f"w{i}" for i in range(5)],
                 freq=[50, 40, 30, 20, 10], pos=["NOUN", "VERB", None, "DET", "ADJ"])
        ),
        "word_responses": pd.concat(
            [responses_df(model_id, layer, state) for layer in (0, 1) for state in ("h", "c")],
            ignore_index=True,
        ),
        "coclusters": pd.DataFrame(
            dict(model_id=model_id, layer=0, state="h", k=2, axis=["word"] * 5 + ["unit"] * 4,
                 item=list(range(5)) + list(range(4)), cluster=[0, 1, 0, 1, 1, 0, 0, 1, 1])
        ),
        "gradient_flow": pd.DataFrame(
            dict(model_id=model_id, layer=0, distance=range(1, 6), grad_norm=[1.0, 0.5, 0.25, 0.1, 0.05],
                 grad_norm_std=0.01)
        ),
        "projections": pd.DataFrame(
            dict(model_id=model_id, layer=0, state="h", axis=["word"] * 2 + ["unit"] * 2, method="pca",
                 item=[0, 1, 0, 1], x=[0.5, -0.5, 1.0, -1.0], y=[0.25, -0.25, 0.0, 2.0], seed=0, params="{}")
        ),
        "corpus_tokens": pd.DataFrame(
            dict(model_id=model_id, position=range(4), document=0, word_id=[3, 0, 4, 1],
                 word=["w3", "w0", "w4", "w1"])
        ),
        "token_states": pd.DataFrame(      # values that float16 holds exactly
            dict(model_id=model_id, layer=1, state="h", unit=[0, 0, 1, 1], position=[0, 1, 0, 1],
                 value=[0.5, -0.25, 0.125, 1.0])
        ),
        "unit_contexts": pd.DataFrame(
            dict(model_id=model_id, layer=1, state="h", unit=0, kind=["h_top", "h_top", "h_bottom"],
                 rank=[1, 2, 1], position=[0, 2, 1], value=[0.5, 0.25, -0.25])
        ),
        "unit_summaries": pd.DataFrame(
            dict(model_id=model_id, layer=1, state="h", unit=[0, 1], n=4, mean=[0.1, -0.1], std=0.5,
                 top_words="w0, w1", bottom_words="w1, w0", top_tag=["NOUN", None], top_tag_z=[3.5, None],
                 bottom_tag=["VERB", None], bottom_tag_z=[-3.25, None],
                 description=["+ on NOUN (z 3.5); − on VERB (z -3.2); top: w0, w1; bottom: w1, w0",
                              "top: w0, w1; bottom: w1, w0"])
        ),
        "unit_tags": pd.DataFrame(
            dict(model_id=model_id, layer=1, state="h", unit=0, tag=["NOUN", "VERB"], n=[2, 2], mean=[0.5, -0.5],
                 std=0.25, z=[3.5, -3.25])
        ),
        "word_loss": pd.DataFrame(
            dict(model_id=model_id, word_id=[0, 1, 4], word=["w0", "w4", "w1"], n=[1, 1, 1],
                 nll_mean=[2.5, 3.25, 1.0], nll_std=0.0)
        ),
        "token_loss": pd.DataFrame(dict(model_id=model_id, position=[1, 2, 3], word_id=[0, 4, 1],
                                        nll=[2.5, 3.25, 1.0])),
        "class_metrics": pd.DataFrame(dict(model_id=model_id, label=["negative", "positive"], n=[3, 5],
                                           accuracy=[2 / 3, 0.8], mean_p_true=[0.6, 0.7])),
        "class_confusion": pd.DataFrame(dict(model_id=model_id, label=["negative", "negative", "positive", "positive"],
                                             predicted=["negative", "positive"] * 2, n=[2, 1, 1, 4])),
        "ablations": pd.DataFrame(dict(model_id=model_id, layer=1, state="h", k=[2, None], cluster=[0, None],
                                       units=["0,2", "1"], mode="zero", target_kind="all", target="all", n=4,
                                       delta_mean=[0.5, 0.1], baseline_mean=0.0, baseline_std=0.2, z=[2.5, 0.5],
                                       p=[1 / 21, 0.5], measure="loss", tokens=3, base_mean=4.0, baseline_sets=20,
                                       seed=0, requested_by=[None, "ann"])),
        "probes": pd.DataFrame(dict(model_id=model_id, layer=[0, 1], state="h", task="upos", n_train=[80, 80],
                                    n_test=[20, 20], accuracy=[0.85, 0.9], majority=0.25, control_accuracy=[0.6, 0.55],
                                    untrained_accuracy=[0.5, 0.45], seed=0, params='{"C": 1.0}')),
        "probe_units": pd.DataFrame(dict(model_id=model_id, layer=1, state="h", unit=[0, 0, 1],
                                         tag=["NOUN", "DET", "VERB"],
                                         weight=np.array([1.5, 0.25, 0.75], dtype=np.float32), rank=[1, 2, 1])),
    }
    with store.write_partition(root, "models", model_id) as w:
        for table, df in frames.items():
            w.write(table, df)
    return frames


def describe(con, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]


def staging_entries(root: Path) -> list[str]:
    """What is in staging, besides the lock and replaced versions awaiting deletion."""
    d = root / store.STAGING_DIR
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.name != "commit.lock" and not p.name.endswith(".old"))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
