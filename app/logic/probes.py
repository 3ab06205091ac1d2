"""POS probe tables (analytics/probes, docs/probes.md): per language model on Models, two models side by side on
Compare.  Every accuracy is shown with its references: the majority tag, the control task (selectivity =
accuracy − control) and the same architecture untrained."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
from dash import html

from app.logic.common import guarded
from app.reader import Reader

__all__ = ["probe_note", "probe_table", "models_probes", "compare_probes", "HEADERS", "NO_GOLD_TAGS"]

#: What the views say for a language model whose corpus has no gold tags (its analysis wrote no probes).
NO_GOLD_TAGS = "no gold tags for this corpus"

#: The columns of a probe table after the layer/state, with their explanations (title on hover).
HEADERS = (("Accuracy", "share of held-out tokens whose gold POS tag the linear probe predicts"),
           ("Control", "the same probe on the control task: each word type a fixed random tag"),
           ("Selectivity", "accuracy − control, in points: what the states add beyond word identity"),
           ("Untrained", "the same probe on the same architecture with its initial (untrained) weights"),
           ("Majority", "always answering the most frequent tag"))


def _pct(v: Any) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def _sel(r: Any) -> str:
    if pd.isna(r.accuracy) or pd.isna(r.control_accuracy):
        return "—"
    return f"{100 * (float(r.accuracy) - float(r.control_accuracy)):+.1f}"


def _cells(r: Any) -> list[html.Td]:
    if r is None:
        return [html.Td("—") for _ in HEADERS]
    return [html.Td(_pct(r.accuracy), className="probe-acc"), html.Td(_pct(r.control_accuracy)), html.Td(_sel(r)),
            html.Td(_pct(r.untrained_accuracy)), html.Td(_pct(r.majority))]


def probe_note(reader: Reader, model_id: str) -> str | None:
    """Why a model has no probe table (None when it has one)."""
    if reader.model(model_id).get("task") != "lm":
        return "a classifier: the probes are for language models"
    if not reader.probes(model_id).empty:
        return None
    if reader.vocab(model_id)["pos"].notna().any():      # a gold-tagged corpus, analysed without the probes
        return "no probes stored: analysed before they existed or with probe_tokens 0; analyse it again to add them"
    return NO_GOLD_TAGS


def _sample_line(df: pd.DataFrame) -> str:
    p = json.loads(df["params"].iloc[0] or "{}")
    sub = (f", a seeded sample of {p.get('sampled_tokens', 0):,} of {p.get('tagged_tokens', 0):,} tagged tokens"
           if p.get("subsampled") else "")
    return (f"{int(df['n_train'].iloc[0]):,} training / {int(df['n_test'].iloc[0]):,} test tokens, split by "
            f"sentence{sub}; seed {int(df['seed'].iloc[0])}")


def probe_table(df: pd.DataFrame) -> html.Table:
    """One model's probes: a row per (layer, state)."""
    head = html.Thead(html.Tr([html.Th("Layer"), html.Th("State")] + [html.Th(h, title=t) for h, t in HEADERS]))
    rows = [html.Tr([html.Td(str(int(r.layer))), html.Td(str(r.state))] + _cells(r), className="probe-row")
            for r in df.itertuples()]
    return html.Table([head, html.Tbody(rows)], className="table probe-table")


def models_probes(reader: Reader) -> html.Div:
    """The Models page's probe card body: a small table per language model (or why it has none)."""
    def run() -> html.Div:
        models = reader.models()
        blocks = []
        for m in models.loc[models["task"] == "lm", "model_id"]:
            note = probe_note(reader, m)
            body: list[Any] = ([html.Span(note, className="muted small probe-note")] if note else
                               [html.Div(_sample_line(reader.probes(m)), className="muted small"),
                                probe_table(reader.probes(m))])
            blocks.append(html.Div([html.H5(m)] + body, className="probe-model", id=f"probes-{m}"))
        return html.Div(blocks or [html.Span("No language model in the store.", className="muted small")])
    return guarded(run, lambda a: a, reader, "/")


def _side(reader: Reader, model_id: str | None) -> tuple[pd.DataFrame, str | None]:
    if not model_id:
        return pd.DataFrame(), "no model picked"
    note = probe_note(reader, model_id)
    return (pd.DataFrame(), note) if note else (reader.probes(model_id), None)


def compare_probes(reader: Reader, a: str | None, b: str | None) -> Any:
    """Both models' probes by (layer, state), each with its controls, side by side."""
    def run() -> Any:
        (da, na), (db, nb) = _side(reader, a), _side(reader, b)
        if na and nb:
            return html.Span(f"A ({a}): {na}; B ({b}): {nb}.", className="muted small probe-note")
        keys = sorted({(int(r.layer), str(r.state)) for d in (da, db) for r in d.itertuples()})
        by = [{(int(r.layer), str(r.state)): r for r in d.itertuples()} for d in (da, db)]
        n = len(HEADERS)
        head = html.Thead([
            html.Tr([html.Th("", colSpan=2), html.Th(f"A: {a}", colSpan=n, className="probe-side"),
                     html.Th(f"B: {b}", colSpan=n, className="probe-side")]),
            html.Tr([html.Th("Layer"), html.Th("State")] + [html.Th(h, title=t) for h, t in HEADERS] * 2)])
        rows = [html.Tr([html.Td(str(k[0])), html.Td(k[1])] + _cells(by[0].get(k)) + _cells(by[1].get(k)),
                        className="probe-row") for k in keys]
        notes = [html.Div(f"{side} ({m}): {note}", className="muted small probe-note")
                 for side, m, note in (("A", a, na), ("B", b, nb)) if note]
        return html.Div(notes + [html.Table([head, html.Tbody(rows)], className="table probe-table probe-compare")])
    return guarded(run, lambda alert: alert, reader, "/compare")
