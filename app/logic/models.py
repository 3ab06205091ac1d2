"""Models page: the model table (as in the RNNVis talk) and the training curves."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from dash import dcc, html

from app import figures
from app.logic.common import alert, guarded, name_suffix
from app.reader import Reader
from app.urlstate import ViewState, href

COLUMNS = ("Model", "Task", "Cell", "Layers × units", "Embed", "Vocab", "Corpus", "Valid", "Test",
           "Analysed", "Views")
COMPARE_LINKS = 2   # "Compare with" links per model: the comparable models with the best test scores


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def score(row: dict, split: str) -> str:
    """'ppl 123.4' for a language model, 'acc 0.873' for a classifier, '—' if unknown."""
    ppl, acc = _num(row.get(f"{split}_perplexity")), _num(row.get(f"{split}_accuracy"))
    if row.get("task") == "lm" and ppl is not None:
        return f"ppl {ppl:,.1f}"
    if acc is not None:
        return f"acc {acc:.3f}"
    return "—" if ppl is None else f"ppl {ppl:,.1f}"


def imported_note(row: dict) -> html.Span | None:
    """For an imported model: a mark saying what was recomputed here and what only the uploader reports."""
    try:
        imported = json.loads(row.get("params") or "{}").get("imported")
    except (TypeError, ValueError, AttributeError):
        return None
    if not isinstance(imported, dict):
        return None
    reported = sorted(imported.get("reported_by_uploader") or {})
    title = (f"imported from {imported.get('file', 'an upload')}; metrics recomputed on {row.get('corpus')} at import"
             + (f"; reported by uploader (not checked): {', '.join(reported)}" if reported else ""))
    return html.Span(" imported", className="muted small model-imported", title=title)


def _badness(row: dict) -> float:
    """Test score as a sort key, lower is better: perplexity for a language model, 1 - accuracy otherwise."""
    if row.get("task") == "lm":
        v = _num(row.get("test_perplexity"))
    else:
        acc = _num(row.get("test_accuracy"))
        v = None if acc is None else 1 - acc
    return math.inf if v is None else v


def comparable(records: list[dict], model_id: str) -> list[str]:
    """The models worth comparing with ``model_id``: same task and corpus, best test score first."""
    me = next(r for r in records if r["model_id"] == model_id)
    peers = [r for r in records if r["model_id"] != model_id
             and r.get("task") == me.get("task") and r.get("corpus") == me.get("corpus")]
    return [r["model_id"] for r in sorted(peers, key=lambda r: (_badness(r), str(r["model_id"])))]


def model_cell(r: dict) -> html.Td:
    """The model's id, its name from the job form (if any) below it, and the imported mark."""
    name = str(r.get("name") or "").strip()
    return html.Td([html.B(str(r["model_id"])), imported_note(r)]
                   + ([html.Div(name, className="muted small model-name")] if name and name != r["model_id"] else []))


def models_table(reader: Reader) -> html.Table:
    """One row per model with links into Explore and Compare; pending models listed below."""
    df = reader.models()
    records = df.to_dict("records")
    head = html.Thead(html.Tr([html.Th(c) for c in COLUMNS]))
    rows = []
    for r in records:
        links = [dcc.Link("Explore", href=href("/explore", ViewState(model=r["model_id"])), className="btn btn-small")]
        for other in comparable(records, r["model_id"])[:COMPARE_LINKS]:
            links.append(dcc.Link(f"Compare with {other}", className="btn btn-small",
                                  title="same task and corpus; the best test score first",
                                  href=href("/compare", ViewState(model=r["model_id"], model_b=other))))
        if int(r["layers"]) > 1:
            links.append(dcc.Link("Compare layers", className="btn btn-small",
                                  href=href("/compare", ViewState(model=r["model_id"], layer=0, model_b=r["model_id"],
                                                                  layer_b=int(r["layers"]) - 1))))
        tokens = _num(r.get("analyzed_tokens"))
        rows.append(html.Tr([
            model_cell(r),
            html.Td(str(r["task"])), html.Td(str(r["cell"]).upper()),
            html.Td(f"{int(r['layers'])} × {int(r['hidden_size'])}"), html.Td(str(int(r["embed_size"]))),
            html.Td(f"{int(r['vocab_size']):,}"), html.Td(str(r["corpus"])),
            html.Td(score(r, "valid")), html.Td(score(r, "test")),
            html.Td(f"{int(tokens):,} tokens ({r.get('analysis_split') or '?'}) · {r.get('states') or ''}"
                    if tokens else "—"),
            html.Td(links, className="links"),
        ], className="model-row"))
    pending = reader.pending_models()
    foot = []
    if pending:
        foot = [html.Tfoot(html.Tr(html.Td(
            f"Not analysed yet (training or analysis not finished): {', '.join(pending)}", colSpan=len(COLUMNS),
            className="muted")))]
    return html.Table([head, html.Tbody(rows)] + foot, className="table models-table")


def models_page(reader: Reader) -> tuple[Any, list[dict], list[str]]:
    """(table or alert, curve-picker options, picked) for the page's first render."""
    def run() -> tuple[Any, list[dict], list[str]]:
        df = reader.models()
        if df.empty:
            return (alert("The store has no analysed model yet. Build the demo with `make demo`, or train one with "
                          "`rnnvis train --preset ...`.", kind="info"), [], [])
        ids = df["model_id"].tolist()
        names = df["name"] if "name" in df else [None] * len(ids)
        return models_table(reader), [{"label": m + name_suffix(m, n), "value": m} for m, n in zip(ids, names)], ids
    return guarded(run, lambda a: (a, [], []), reader, "/explore")


def curves(reader: Reader, picked: Sequence[str] | None) -> Any:
    """Training curves of the picked models."""
    ids = [m for m in (picked or []) if m]
    if not ids:
        return figures.message_figure("Pick models to see their training curves.")
    return guarded(lambda: figures.training_curves(reader.metrics(ids)),
                   lambda a: figures.message_figure("Could not read the training metrics."), reader)
