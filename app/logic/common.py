"""Helpers shared by the pages: alerts, error handling at the callback edge, option lists."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dash import dcc, html

from analytics.sentences import SentenceError
from analytics.store import StoreError, UnknownModelError
from app.reader import AnalysisMissingError, Reader
from app.urlstate import ViewState, href
from models.checkpoint import CheckpointError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors a user can act on: their message is shown as is.
USER_ERRORS = (UnknownModelError, AnalysisMissingError, SentenceError, CheckpointError, StoreError, ValueError,
               LookupError, PermissionError)


def alert(message: str, known: Sequence[str] = (), *, kind: str = "warning", page: str = "/explore") -> html.Div:
    """A visible message box (text is escaped by Dash), with links to the known models if given."""
    children: list[Any] = [html.Span(str(message))]
    if known:
        children += [html.Br(), html.Span("Known models: ")]
        for i, m in enumerate(known):
            children += ([", "] if i else []) + [dcc.Link(m, href=href(page, ViewState(model=m)))]
    return html.Div(children, className=f"alert alert-{kind}", role="alert")


def error_alert(e: BaseException, reader: Reader | None = None, page: str = "/explore") -> html.Div:
    """The alert for an exception raised while serving a callback (no traceback reaches the page)."""
    known: Sequence[str] = getattr(e, "known", ()) or ()
    if isinstance(e, (UnknownModelError, AnalysisMissingError)) and reader is not None and not known:
        known = reader.model_ids()
    if isinstance(e, USER_ERRORS):
        log.info("shown to the user: %s: %s", type(e).__name__, e)
        return alert(str(e), known, page=page)
    log.exception("callback failed")
    return alert(f"Something went wrong ({type(e).__name__}); the error was logged.", kind="danger", page=page)


def guarded(fn: Callable[[], T], on_error: Callable[[html.Div], T], reader: Reader | None = None,
            page: str = "/explore") -> T:
    """Run ``fn``; on an exception return ``on_error(alert)`` instead of a traceback."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the callback edge: the user gets a message, the log the trace
        return on_error(error_alert(e, reader, page))


def event_points(event: Any) -> list[dict]:
    """The points of a Plotly click or selection event (``{"points": [{...}, ...]}``), the malformed left out:
    an event comes from the browser, so its shape is checked here, not trusted."""
    points = event.get("points") if isinstance(event, dict) else None
    return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def analysed_models(reader: Reader) -> list[dict[str, str]]:
    """Dropdown options: every model in the store."""
    df = reader.models()
    return [{"label": f"{r.model_id}{name_suffix(r.model_id, getattr(r, 'name', None))} "
                      f"({r.cell} {r.layers}×{r.hidden_size}, {r.task})", "value": r.model_id}
            for r in df.itertuples()]


def name_suffix(model_id: str, name: object) -> str:
    """' · <name>' for a model given a name (the job form's "Name (optional)") other than its id."""
    text = str(name).strip() if isinstance(name, str) else ""
    return f" · {text}" if text and text != model_id else ""


def layer_options(reader: Reader, model_id: str) -> tuple[list[dict], list[dict]]:
    """(layer options, state options) of an analysed model."""
    ls = reader.layer_states(model_id)
    layers = [{"label": f"layer {layer}", "value": layer} for layer in ls]
    states = [{"label": STATE_LABELS.get(s, s), "value": s} for s in (ls[0] if ls else [])]
    return layers, states


STATE_LABELS = {"h": "h (hidden)", "c": "c (cell)", "i": "i (input gate)", "f": "f (forget gate)",
                "g": "g (cell input)", "o": "o (output gate)", "z": "z (update gate)", "r": "r (reset gate)",
                "n": "n (new gate)"}


def corrections_alert(notes: Sequence[str]) -> list:
    """[one info line naming what was corrected in the page's link], or [] when nothing was."""
    if not notes:
        return []
    return [alert("Corrected in this link: " + "; ".join(notes) + ".", kind="info")]


def picked_notes(reader: Reader, model_id: str, wanted: tuple[int | None, str | None], got: tuple[int, str],
                 shown: Sequence[str] | None = None) -> list[str]:
    """What :func:`pick_layer_state` changed of the (layer, state) a link asked for, one phrase each (``shown``:
    the states the page can show, where fewer than the layer has)."""
    notes = []
    ls = reader.layer_states(model_id)
    if wanted[0] is not None and wanted[0] != got[0]:
        notes.append(f"layer {wanted[0]} → {got[0]} ({model_id} has layers {min(ls)}–{max(ls)})")
    if wanted[1] and wanted[1] != got[1]:
        states = [x for x in ls[got[0]] if shown is None or x in shown]
        notes.append(f"state {wanted[1]} → {got[1]} (layer {got[0]} {'has' if shown is None else 'can show'} "
                     f"{', '.join(states)})")
    return notes


#: The model a page opens on when the link names none and the store has it: the paper's flagship, which the
#: README's and the user guide's examples use.
FLAGSHIP = "demo-lstm"


def default_model(reader: Reader, wanted: str | None) -> str | None:
    """The model to show: the wanted one (even if unknown, so the page can say so), else :data:`FLAGSHIP` if
    stored, else the first stored one."""
    if wanted:
        return wanted
    ids = reader.model_ids()
    return FLAGSHIP if FLAGSHIP in ids else (ids[0] if ids else None)


def pick_layer_state(reader: Reader, model_id: str, layer: int | None, state: str | None) -> tuple[int, str]:
    """A valid (layer, state) of the model, keeping the wanted ones where they exist (default: last layer, h)."""
    ls = reader.layer_states(model_id)
    layers = sorted(ls)
    lay = layer if layer in ls else layers[-1]
    st = state if state in ls[lay] else ("h" if "h" in ls[lay] else ls[lay][0])
    return lay, st
