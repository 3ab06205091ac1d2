"""Dashboard fixtures beyond the shared tiny store."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def wide_store(tiny_store, tmp_path_factory, fixtures) -> Path:
    """A copy of ``tiny_store`` plus ``tiny-wide``: a 2×32 LSTM of the tagged Brown fixture, every state analysed.

    Wide enough for what the 8-unit models cannot show: more than 15 matched pairs, chips of many columns (at
    k = 2 a chip holds at least 16 units: 6 columns, a Compare view wider than half a 1366 px screen), a POS
    legend, a long word list.
    """
    from analytics.pipeline import AnalysisOptions, analyze_model
    from models.config import ModelConfig, TrainConfig
    from models.corpora import load_corpus
    from models.train import train_model

    root = tmp_path_factory.mktemp("wide-store") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    brown = load_corpus(str(fixtures / "brown"))
    train_model("tiny-wide", ModelConfig("lm", "lstm", 2, 32, 8), TrainConfig(epochs=1, batch_size=8, bptt=10),
                root, corpus=brown, show_progress=False)
    analyze_model("tiny-wide", root, AnalysisOptions(batch_size=8, top_words=60, min_count=2, k_max=8, gradient_k=5,
                                                     max_tokens=4000, states="all"), corpus=brown,
                  show_progress=False)
    return root


#: The co-clustering that ``lone_store`` rewrites: tiny-lstm, layer 0, h, k = 4, every unit in H0.
LONE = ("tiny-lstm", 0, "h", 4)


@pytest.fixture(scope="session")
def lone_store(tiny_store, tmp_path_factory) -> Path:
    """A copy of ``tiny_store`` where one co-clustering put every unit in one cluster (``LONE``), as spectral
    co-clustering does on demo-sentiment at k = 6 (5 of 6 word clusters without units): the words keep their
    four clusters, the units all sit in H0. Written through the store like an analysis (the other tables kept)."""
    import pyarrow.parquet as pq

    from analytics import store

    root = tmp_path_factory.mktemp("lone-store") / "store"
    shutil.copytree(tiny_store, root, ignore=shutil.ignore_patterns(".staging"))
    model, layer, state, k = LONE
    src = store.table_file(root, "models", model, "coclusters")
    cl = pq.read_table(src).to_pandas()
    mask = (cl["layer"] == layer) & (cl["state"] == state) & (cl["k"] == k) & (cl["axis"] == "unit")
    assert mask.any()
    cl.loc[mask, "cluster"] = 0
    tables = sorted({p.name.split(".")[0] for p in src.parent.glob("*.parquet")} - {"coclusters"})
    with store.write_partition(root, "models", model) as w:
        w.write("coclusters", cl)
        for t in tables:
            assert w.keep(t), t
    return root



@pytest.fixture(scope="session")
def loss_store(tiny_store, tmp_path_factory, fixtures):
    """tiny_store plus two LSTMs of the tagged Brown fixture (one trained longer) and a second classifier."""
    from tests.app.loss_store import build_loss_store

    return build_loss_store(tiny_store, tmp_path_factory.mktemp("loss-store") / "store", fixtures)
