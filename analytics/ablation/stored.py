"""An analysed model of a store, ready to ablate: its weights, its analysed split, tags and co-clusters.

Reads only: the checkpoint, the corpus it was trained on, and the ``models``, ``coclusters`` and
``word_responses`` views.  Also finds the unit cluster linked to a word class (the chip that Explore draws
with the strongest edge to the word cluster holding most words of a POS tag).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.checkpoint import find_checkpoint, model_from_checkpoint, read_checkpoint
from models.corpora import load_corpus
from models.rnn import RecurrentModel
from models.train import lm_stream

from .. import store
from ..coclusters import edge_weights
from .run import Documents, LMText

__all__ = ["StoredModel", "load_stored", "Link", "linked_unit_cluster"]


@dataclass
class StoredModel:
    model: RecurrentModel
    data: LMText | Documents          # word_clusters left empty: they depend on (layer, state, k)
    tags: list[str | None]            # each word's majority POS tag, by word id (None: unknown)
    coclusters: pd.DataFrame          # the model's coclusters rows (layer, state, k, axis, item, cluster)


def load_stored(root: str | Path, model_id: str, *, corpus: str | None = None, device: str = "cpu") -> StoredModel:
    """The model, the analysed split (as the analysis read it) and the stored co-clusters of ``model_id``.

    ``corpus``: a corpus name or path, when not the one the checkpoint names (as ``analyze_model``'s)."""
    ckpt = read_checkpoint(find_checkpoint(root, model_id))
    model, vocab = model_from_checkpoint(ckpt, device)
    with store.connect(root) as con:
        meta = store.query(con, "SELECT analysis_split, analyzed_tokens FROM models WHERE model_id = ?", [model_id])
        clusters = store.query(con, "SELECT layer, state, k, axis, item, cluster FROM coclusters WHERE model_id = ?",
                               [model_id])
    if meta.empty:
        raise ValueError(f"model {model_id!r} has not been analysed: analyse it first")
    split = str(meta["analysis_split"][0])
    tags = [vocab.pos.get(w) for w in vocab.words]
    corpus = load_corpus(corpus or ckpt.get("train_config", {}).get("corpus") or ckpt["corpus"])
    if corpus.task != ("lm" if model.cfg.task == "lm" else "sentiment"):
        raise ValueError(f"{model_id} is a {model.cfg.task} model but corpus {corpus.name!r} is for {corpus.task}")
    if model.cfg.task == "lm":
        data = LMText(lm_stream(corpus, vocab, split), tags)
    else:
        max_len = int(ckpt.get("train_config", {}).get("max_len") or 0)
        docs = [vocab.encode(d) for d in corpus.splits[split]]
        data = Documents([d[:max_len] if max_len else d for d in docs], corpus.labels[split], corpus.label_names)
    return StoredModel(model, data, tags, clusters)


@dataclass(frozen=True)
class Link:
    word_cluster: int        # the word cluster with most words of the tag
    tag_words: int           # how many of its words have the tag
    unit_cluster: int        # the unit cluster with the strongest edge |e| to it
    edge: float              # that edge's weight e(W, H), the mean signed response over the block
    units: tuple[int, ...]


def linked_unit_cluster(root: str | Path, model_id: str, layer: int, state: str, k: int, tag: str,
                        tags: list[str | None]) -> Link:
    """The unit cluster most strongly linked (largest |edge weight|, :func:`analytics.coclusters.edge_weights`)
    to the word cluster with the most words of POS ``tag`` (``tags`` by word id), at (layer, state, k)."""
    with store.connect(root) as con:
        rows = store.query(con, "SELECT axis, item, cluster FROM coclusters WHERE model_id = ? AND layer = ? "
                                "AND state = ? AND k = ?", [model_id, layer, state, k])
        words = rows[rows["axis"] == "word"].sort_values("item")
        resp = store.query(con, "SELECT word_id, unit, mean FROM word_responses WHERE model_id = ? AND layer = ? "
                                "AND state = ? AND word_id IN (SELECT unnest(?::INTEGER[]))",
                           [model_id, layer, state, words["item"].astype(int).tolist()])
    if words.empty:
        raise ValueError(f"{model_id} has no co-clustering of layer {layer} {state} at k = {k}")
    units = rows[rows["axis"] == "unit"].sort_values("item")
    signed = resp.pivot(index="word_id", columns="unit", values="mean").loc[words["item"], units["item"]]
    edges = edge_weights(signed.to_numpy(np.float64), words["cluster"].to_numpy(), units["cluster"].to_numpy(), k)
    counts = np.bincount(words["cluster"][[tags[int(w)] == tag for w in words["item"]]], minlength=k)
    if counts.max() == 0:
        raise ValueError(f"no co-clustered word of {model_id} is tagged {tag!r}")
    wc = int(counts.argmax())
    uc = int(np.nanargmax(np.abs(edges[wc])))
    members = tuple(int(u) for u in units["item"][units["cluster"] == uc])
    return Link(wc, int(counts[wc]), uc, float(edges[wc, uc]), members)
