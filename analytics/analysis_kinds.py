"""What differs between analysing a language model and a classifier: one small strategy object per kind.

:class:`StreamAnalysis` (a language model) traces the split as one continuous stream (see
:mod:`analytics.lm_trace`) and stores its token losses; :class:`DocumentAnalysis` (a classifier) traces every
document from a zero state and stores its per-class outcomes. :func:`analysis_kind` picks one by the model's
task, as :func:`models.task_kinds.task_kind` does for training; :mod:`analytics.pipeline` runs either.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.buffers import Workspace
from models.corpora import Corpus
from models.rnn import RecurrentModel
from models.train import lm_stream

from .ablation import Documents, LMText, write_ablations
from .lm_trace import trace_lm, use_input_table
from .losses import write_class_outcomes, write_lm_losses
from .quantiles import systematic_keep
from .responses import ResponseAccumulator
from .token_states import TokenStateCollector
from .unit_contexts import ContextTracker, TraceSinks

__all__ = ["Traced", "AnalysisKind", "StreamAnalysis", "DocumentAnalysis", "analysis_kind"]

Report = Callable[[str, float], None]


@dataclass
class Traced:
    """What the trace leaves for the tables: the tokens counted, the token states kept, the units' top contexts."""

    tokens: int = 0
    collector: TokenStateCollector | None = None
    contexts: ContextTracker | None = None
    text_ids: np.ndarray | None = None
    documents: np.ndarray | None = None
    docs: list[list[int]] | None = None          # a classifier's documents as traced (for its class outcomes)


def _trace_stream(model: RecurrentModel, vocab, corpus: Corpus, opts, states, ws: Workspace,
                  acc: ResponseAccumulator, token_keys, bar, report: Callable[[str, float], None]) -> Traced:
    """A language model: the split as one continuous stream (see :mod:`analytics.lm_trace`)."""
    out = Traced(contexts=ContextTracker(states, model.cfg.hidden_size, model.head.weight.device))
    stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
    out.text_ids = stream.numpy()
    if token_keys and stream.numel():
        out.collector = TokenStateCollector(token_keys, states, model.cfg.hidden_size, stream.numel())

    def progress(fraction: float) -> None:
        bar.update(int(100 * fraction) - bar.n)
        report("trace", 0.8 * fraction)

    out.tokens = trace_lm(model, stream, opts, states, ws, acc, progress, TraceSinks(out.collector, out.contexts))
    return out


def _document_batches(docs: list[list[int]], doc_keep: list[np.ndarray], batch_size: int
                      ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Documents by length, ``batch_size`` at a time: (indices, lengths [B], ids [T, B] zero-padded, keep [T, B])."""
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    for g in (order[i:i + batch_size] for i in range(0, len(order), batch_size)):
        lengths = torch.tensor([len(docs[i]) for i in g])
        x = torch.zeros(int(lengths.max()), len(g), dtype=torch.long)
        keep = torch.zeros(x.shape, dtype=torch.bool)
        for j, i in enumerate(g):
            x[: len(docs[i]), j] = torch.tensor(docs[i])
            keep[: len(docs[i]), j] = torch.from_numpy(doc_keep[i])
        yield g, lengths, x, keep


def _trace_documents(model: RecurrentModel, vocab, corpus: Corpus, opts, states, ws: Workspace,
                     acc: ResponseAccumulator, token_keys, max_len: int, bar,
                     report: Callable[[str, float], None]) -> Traced:
    """A classifier: every document from zero state, truncated at ``max_len`` (0: whole)."""
    out = Traced(contexts=ContextTracker(states, model.cfg.hidden_size, model.head.weight.device))
    docs = [vocab.encode(d) for d in corpus.splits[opts.split]]
    if max_len:
        docs = [d[:max_len] for d in docs]
    if opts.max_tokens:
        cum = np.cumsum([len(d) for d in docs])
        docs = docs[: max(1, int(np.searchsorted(cum, opts.max_tokens)) + 1)]
    out.docs = docs
    lengths = [len(d) for d in docs]
    flat = np.concatenate([np.asarray(d, np.int64) for d in docs] or [np.zeros(0, np.int64)])
    # The quantile sample in text order: documents in order, then position.
    doc_keep = np.split(systematic_keep(flat, opts.quantile_cap), np.cumsum(lengths)[:-1]) if docs else []
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out.text_ids, out.documents = flat, np.repeat(np.arange(len(docs)), lengths)
    if token_keys and starts[-1]:
        out.collector = TokenStateCollector(token_keys, states, model.cfg.hidden_size, int(starts[-1]))
    table = use_input_table(model, int(starts[-1]))
    bar.reset(total=-(-len(docs) // opts.batch_size))
    for g, n, x, keep in _document_batches(docs, doc_keep, opts.batch_size):
        values = model.trace_packed(x, keys=states, deltas=True, workspace=ws, input_table=table).values
        mask = (torch.arange(x.size(0))[:, None] < n[None, :]).reshape(-1)        # [T*B]
        acc.update(x.reshape(-1)[mask], values.view(-1, values.shape[-1])[mask], keep=keep.reshape(-1)[mask])
        for sink in (out.collector, out.contexts):
            if sink is not None:
                sink.add_documents(values, [int(starts[i]) for i in g], n.tolist())
        out.tokens += int(n.sum())
        bar.update(1)
        report("trace", 0.8 * bar.n / bar.total)
    return out


class AnalysisKind:
    """How one kind of model is traced, and what it stores about its predictions."""

    def trace(self, model: RecurrentModel, vocab, corpus: Corpus, opts, states, ws: Workspace,
              acc: ResponseAccumulator, token_keys, bar, report: Report) -> Traced:
        raise NotImplementedError

    def write_outcomes(self, w, model_id: str, model: RecurrentModel, vocab, corpus: Corpus, opts,
                       traced: Traced, coclusters: pd.DataFrame | None, report: Report) -> None:
        """The model's predictions (losses or class outcomes), then its precomputed ablations: every unit
        cluster of the last layer at the default k against random unit sets (:mod:`analytics.ablation`)."""
        raise NotImplementedError


class StreamAnalysis(AnalysisKind):
    """A language model: the split read as one stream; its token and word losses."""

    def trace(self, model, vocab, corpus, opts, states, ws, acc, token_keys, bar, report):
        return _trace_stream(model, vocab, corpus, opts, states, ws, acc, token_keys, bar, report)

    def write_outcomes(self, w, model_id, model, vocab, corpus, opts, traced, coclusters, report):
        stream = lm_stream(corpus, vocab, opts.split, opts.max_tokens)
        write_lm_losses(w, model_id, model, stream, vocab.words, lambda f: report("losses", 0.95 + 0.02 * f))
        if coclusters is not None:
            write_ablations(w, model_id, model, LMText(stream, [vocab.pos.get(x) for x in vocab.words]), coclusters,
                            seed=opts.seed, on_progress=lambda f: report("ablations", 0.97 + 0.02 * f))


class DocumentAnalysis(AnalysisKind):
    """A classifier: every document from a zero state, cut at the ``max_len`` it was trained with."""

    def __init__(self, max_len: int):
        self.max_len = max_len

    def trace(self, model, vocab, corpus, opts, states, ws, acc, token_keys, bar, report):
        return _trace_documents(model, vocab, corpus, opts, states, ws, acc, token_keys, self.max_len, bar, report)

    def write_outcomes(self, w, model_id, model, vocab, corpus, opts, traced, coclusters, report):
        labels = corpus.labels[opts.split][:len(traced.docs)]
        write_class_outcomes(w, model_id, model, traced.docs, labels, corpus.label_names)
        if coclusters is not None:
            write_ablations(w, model_id, model, Documents(traced.docs, labels, corpus.label_names), coclusters,
                            seed=opts.seed, on_progress=lambda f: report("ablations", 0.97 + 0.02 * f))


def analysis_kind(model: RecurrentModel, ckpt: dict[str, Any]) -> AnalysisKind:
    """The strategy for ``model`` (its checkpoint gives a classifier's training ``max_len``)."""
    if model.cfg.task == "lm":
        return StreamAnalysis()
    return DocumentAnalysis(int(ckpt.get("train_config", {}).get("max_len") or 0))   # as trained
