"""Compare's "where A beats B" panel: two language models' losses by POS tag and word, or two classifiers'
per-class results (the figures are in :mod:`app.figures.losses`)."""
from __future__ import annotations

from typing import Any

import pandas as pd
from dash import html

from app import figures
from app.figures.losses import ablation_figure, confusion_figure, tag_delta_figure, word_loss_scatter
from app.logic.common import guarded
from app.reader import Reader

__all__ = ["losses_panel", "ablation_view", "TOP_WORDS"]

PAGE = "/compare"
TOP_WORDS = 12


def _words_table(words: pd.DataFrame, caption: str) -> html.Table:
    head = html.Tr([html.Th(h) for h in ("word", "tag", "n", "Δ loss", "contribution")])
    rows = [html.Tr([html.Td(r.word), html.Td(r.tag), html.Td(f"{r.n:,}", className="num"),
                     html.Td(f"{r.delta:+.3f}", className="num"), html.Td(f"{r.contribution:+.5f}", className="num")])
            for r in words.itertuples()]
    return html.Table([html.Caption(caption), html.Thead(head), html.Tbody(rows)], className="pairs")


def _lm_panel(reader: Reader, a: str, b: str) -> tuple[Any, Any, Any, Any]:
    comp = reader.loss_comparison(a, b)
    share = f"{comp.left_out:,} tokens left out (predicted differently: the vocabularies differ)" \
        if comp.left_out else "every token compared"
    summary = html.P([html.B(f"{a} {'beats' if comp.delta < 0 else 'trails'} {b} by {abs(comp.delta):.4f} nats "
                             "per token"),
                      f" (mean loss {comp.loss_a:.4f} against {comp.loss_b:.4f}, perplexity ratio "
                      f"{pow(2.718281828459045, comp.delta):.3f}) over {comp.tokens:,} tokens; {share}."])
    better_a = comp.by_word.head(TOP_WORDS)
    better_b = comp.by_word.tail(TOP_WORDS).iloc[::-1]
    tables = html.Div([_words_table(better_a, f"where {a} gains most"),
                       _words_table(better_b, f"where {b} gains most")], className="loss-words")
    return summary, tag_delta_figure(comp, a, b), word_loss_scatter(comp, a, b), tables


def _class_table(metrics: pd.DataFrame, name: str) -> html.Table:
    head = html.Tr([html.Th(h) for h in ("label", "n", "accuracy", "mean p(true)")])
    rows = [html.Tr([html.Td(r.label), html.Td(f"{r.n:,}", className="num"),
                     html.Td(f"{r.accuracy:.3f}", className="num"), html.Td(f"{r.mean_p_true:.3f}", className="num")])
            for r in metrics.itertuples()]
    return html.Table([html.Caption(f"{name}: per class"), html.Thead(head), html.Tbody(rows)], className="pairs")


def _classifier_panel(reader: Reader, a: str, b: str) -> tuple[Any, Any, Any, Any]:
    oa, ob = reader.class_outcomes(a), reader.class_outcomes(b)
    summary = html.P(f"Per class, on each classifier's analysed split: {a} and {b}.")
    tables = html.Div([_class_table(oa["metrics"], a), _class_table(ob["metrics"], b)], className="loss-words")
    return summary, confusion_figure(oa["confusion"], a), confusion_figure(ob["confusion"], b), tables


def losses_panel(reader: Reader, a: str | None, b: str | None) -> tuple[Any, Any, Any, Any]:
    """(summary, left figure, right figure, tables) of the panel; a message in place of each on a mismatch."""
    def fail(alert) -> tuple[Any, Any, Any, Any]:
        return alert, figures.message_figure("No comparison."), figures.message_figure("No comparison."), None

    def run() -> tuple[Any, Any, Any, Any]:
        if not a or not b:
            return fail(html.P("Pick two models."))
        if a == b:
            return fail(html.P("Pick two different models to see where one beats the other."))
        ta, tb = reader.model(a)["task"], reader.model(b)["task"]
        if ta != tb:
            return fail(html.P(f"{a} is a {'language model' if ta == 'lm' else 'classifier'} and {b} is not: "
                               "losses compare only between two language models, or two classifiers."))
        return _lm_panel(reader, a, b) if ta == "lm" else _classifier_panel(reader, a, b)

    return guarded(run, fail, reader, PAGE)


def ablation_view(reader: Reader, model: str | None, layer: int | None, state: str | None, k: int | None,
                  selection: dict | None) -> Any:
    """Explore's "does this chip matter?": the stored ablation of the selected chip, or why there is none."""
    chip = (selection or {}).get("chip")
    if not model or layer is None or not state or chip is None:
        return figures.message_figure("Click a chip's label to see what zeroing its units does.", height=160)

    def run() -> Any:
        rows = reader.stored_ablations(model, int(layer), state, int(k or 6), int(chip))
        if rows.empty:
            return figures.message_figure(f"No ablation stored for H{chip} of layer {layer} {state} at k = {k}: "
                                          "the analysis ablates the last layer's h and c chips at k = 6.", height=160)
        units = len(str(rows["units"].iloc[0]).split(","))
        text = (f"H{chip}: zeroing its {units} units, against {int(rows['baseline_sets'].iloc[0])} random sets of "
                f"{units} units<br><sup>the first {int(rows['n'].iloc[0]):,} tokens of the analysed split · "
                "coloured: beyond the random sets (p ≤ 0.05) · hover: z and p</sup>")
        return ablation_figure(rows, text)

    return guarded(run, lambda a: figures.message_figure("No ablation.", height=160), reader, PAGE)

