"""The reader's sentences: evaluate and store a user's sentence, read its states back, its glyphs.

A part of :class:`app.reader.Reader`, on :class:`app.reader.base.ReaderBase`, which declares what it
uses of the reader: its caches, queries and co-cluster views.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from analytics import store
from analytics.glyphs import class_contributions, glyph_measures
from app.reader.base import ReaderBase
from app.reader.types import AnalysisMissingError

log = logging.getLogger(__name__)


class SentencesMixin(ReaderBase):
    """Sentences of :class:`app.reader.Reader`."""

    def _checkpoint(self, model_id: str) -> tuple[Any, Any, list[str]]:
        from models.checkpoint import checkpoint_file, model_from_checkpoint, read_checkpoint
        path = checkpoint_file(self.root, model_id)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            from models.checkpoint import CheckpointError
            raise CheckpointError(f"model {model_id!r} has no checkpoint in the store; "
                                  "new sentences cannot be evaluated") from None

        def load() -> tuple[Any, Any, list[str]]:
            ckpt = read_checkpoint(path)
            model, vocab = model_from_checkpoint(ckpt)
            return model, vocab, list(ckpt.get("label_names") or [])
        return self._models.get((model_id, mtime), load)

    def add_sentence(self, model_id: str, text: str, created_by: str = "anonymous") -> str:
        """Evaluate ``text`` on the model, store it, return its sentence id (SentenceError if empty/too long)."""
        from analytics.sentences import evaluate_sentence, save_sentence
        self.model(model_id)  # unknown model -> UnknownModelError
        model, vocab, labels = self._checkpoint(model_id)
        res = evaluate_sentence(model, vocab, model_id, text, label_names=labels or None)
        analysed = set(self.layer_states(model_id).get(0, [])) | {"h"}
        res.states = {key: v for key, v in res.states.items() if key[1] in analysed}  # what the views can show
        sid = save_sentence(self.root, res, created_by=created_by)
        # what was just written is in memory: seed the caches instead of reading it back
        v = self._sentence_version(sid)
        if v is not None:
            meta = pd.DataFrame([{"sentence_id": sid, "model_id": model_id, "text": res.text,
                                  "created_by": created_by, "prediction": res.prediction,
                                  "probability": res.probability}])
            self._small.put(("sentence", sid, v), meta)
            for (layer, state), values in res.states.items():
                self._small.put(("sstates", sid, v, layer, state), (list(res.tokens), values.astype(np.float32)))
        return sid

    def _sentence_version(self, sentence_id: str) -> str | None:
        try:
            f = store.table_file(self.root, "sentences", sentence_id, "sentence_states")
        except ValueError:
            return None
        return f.name.split(".")[1] if f is not None else None

    def sentence(self, sentence_id: str) -> dict[str, Any] | None:
        """The sentence's row (text, model_id, prediction, probability), or None if it is not stored."""
        v = self._sentence_version(sentence_id)
        if v is None:
            return None
        df = self._small.get(("sentence", sentence_id, v), lambda: self._q(
            "SELECT * FROM sentences WHERE sentence_id = ?", [sentence_id]))
        return None if df.empty else df.iloc[0].to_dict()

    def sentence_states(self, sentence_id: str, layer: int, state: str) -> tuple[list[str], np.ndarray]:
        """(tokens [T], states [T, H]) of a stored sentence for one layer and state."""
        v = self._sentence_version(sentence_id)

        def load() -> tuple[list[str], np.ndarray]:
            df = self._q("SELECT position, token, unit, value FROM sentence_states WHERE sentence_id = ? "
                         "AND layer = ? AND state = ? ORDER BY position, unit", [sentence_id, layer, state])
            if df.empty:
                return [], np.zeros((0, 0), np.float32)
            T, H = int(df["position"].max()) + 1, int(df["unit"].max()) + 1
            values = np.zeros((T, H), np.float32)
            values[df["position"].to_numpy(), df["unit"].to_numpy()] = df["value"].to_numpy()
            tokens = df.drop_duplicates("position").sort_values("position")["token"].tolist()
            return tokens, values
        return self._small.get(("sstates", sentence_id, v, layer, state), load)

    def glyphs(self, sentence_id: str, layer: int, state: str, k: int) -> dict[str, Any] | None:
        """Everything the glyph view draws for one sentence, or None if it is not stored.

        Keys: sentence_id, model_id, task, text, tokens [T], original [T], measures (glyph_measures frame),
        prediction (a classifier's class, a language model's next word), probability, label_names,
        contributions [T, C] (classifiers) or None.
        """
        meta = self.sentence(sentence_id)
        if meta is None:
            return None
        model_id = str(meta["model_id"])
        v = self.version(model_id)
        key = ("glyphs", sentence_id, self._sentence_version(sentence_id), v, layer, state, k)
        return self._derived.get(key, lambda: self._glyphs(meta, layer, state, k))

    def _glyphs(self, meta: dict[str, Any], layer: int, state: str, k: int) -> dict[str, Any]:
        from models.text import tokenize
        model_id, sid = str(meta["model_id"]), str(meta["sentence_id"])
        view = self.clusters(model_id, layer, state, k)
        tokens, values = self.sentence_states(sid, layer, state)
        if not tokens:
            raise AnalysisMissingError(model_id, f"sentence states for layer {layer} state {state!r}")
        ul = view.units.sort_values("unit")["cluster"].to_numpy()
        measures = glyph_measures(values, ul)
        original = tokenize(str(meta["text"]))
        if len(original) != len(tokens):   # a tokenizer change since the sentence was stored
            original = tokens
        out: dict[str, Any] = {"sentence_id": sid, "model_id": model_id, "text": str(meta["text"]),
                               "tokens": tokens, "original": original, "measures": measures, "k": view.k,
                               "prediction": meta.get("prediction"), "probability": meta.get("probability"),
                               "label_names": [], "contributions": None}
        info = self.model(model_id)
        out["task"] = str(info["task"])
        if info["task"] == "sentiment":
            last = int(info["layers"]) - 1
            try:
                model, _, labels = self._checkpoint(model_id)
                _, h = self.sentence_states(sid, last, "h")
                w = model.head.weight.detach().cpu().numpy()
                out["contributions"] = class_contributions(h, w)
                out["label_names"] = labels or [str(i) for i in range(w.shape[0])]
            except Exception as e:  # noqa: BLE001 - the glyphs still draw without the explanation
                log.warning("no classifier contributions for %s: %s", sid, e)
        return out
