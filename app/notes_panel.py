"""The team-notes panel (the Unit page's and the Models page's): the notes on what the page shows, a search over
every note's body, and for members a form to add one (or edit their own).

Layout and wiring only; the rights and the rows are :mod:`app.logic.notes`'. :func:`register` adds the panel's
callbacks; one page module (the Unit page's) calls it, as Dash runs every page module again for each app it
makes, so each app gets them once (a callback serves every page that shows the panel).
"""
from __future__ import annotations

from typing import Any

from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from app import context, ids
from app.hosted import auth
from app.logic import notes as logic
from app.logic.common import error_alert

__all__ = ["panel", "register"]


def panel(target: dict | None, title: str = "Team notes", extra: Any = None) -> html.Section:
    """The panel for ``target`` ({model_id, layer, state, k, cluster, unit}; None: no model yet)."""
    t = logic.target_of(target)
    options = logic.kind_options(t)
    try:
        listed = logic.listing(context.reader(), target)
    except Exception as e:  # noqa: BLE001 - shown in the page, never a traceback
        listed = error_alert(e)
    writer = auth.can("member")
    form = html.Div([
        dcc.RadioItems(id=ids.NOTES_KIND, options=options, value=options[0]["value"] if options else None,
                       inline=True, className="radio inline notes-kind"),
        dcc.Textarea(id=ids.NOTES_BODY, placeholder=f"A note for the team: plain text, at most {logic.MAX_BODY:,} "
                                                     "characters (e.g. “quote detector”)",
                     className="notes-body", rows=3),
        html.Button("Save note", id=ids.NOTES_SAVE, className="btn btn-primary btn-sm",
                    **auth.gate("member", "write notes")),
    ], className="notes-form", style=None if writer else {"display": "none"})
    return html.Section([
        html.Div([html.H4(title), dcc.Input(id=ids.NOTES_SEARCH, type="search", debounce=True, maxLength=200,
                                            placeholder="search all notes", className="notes-search")],
                 className="card-head"),
        dcc.Store(id=ids.NOTES_TARGET, data=target), dcc.Store(id=ids.NOTES_EDITING, data=None),
        html.Div() if extra is None else extra,     # not `extra or`: a component without children is falsy
        form if options else html.Div(form, style={"display": "none"}),
        html.Div(id=ids.NOTES_MSG, role="status"),
        html.Div(listed, id=ids.NOTES_LIST),
    ], className="card notes-panel")


def _fired() -> tuple[Any, Any]:
    """(the trigger's id, its value) of this callback call."""
    first = ctx.triggered[0] if ctx.triggered else {}
    return ctx.triggered_id, first.get("value")


def register() -> None:
    """Add the panel's callbacks to the app being made (call from one page module)."""
    callback(Output(ids.NOTES_MSG, "children"), Output(ids.NOTES_LIST, "children"), Output(ids.NOTES_BODY, "value"),
             Output(ids.NOTES_EDITING, "data"),
             Input(ids.NOTES_SAVE, "n_clicks"), Input({"type": ids.NOTES_EDIT, "index": ALL}, "n_clicks"),
             Input({"type": ids.NOTES_DELETE, "index": ALL}, "n_clicks"),
             State(ids.NOTES_TARGET, "data"), State(ids.NOTES_KIND, "value"), State(ids.NOTES_BODY, "value"),
             State(ids.NOTES_EDITING, "data"), State(ids.NOTES_SEARCH, "value"), prevent_initial_call=True)(_on_action)
    callback(Output(ids.NOTES_LIST, "children", allow_duplicate=True), Input(ids.NOTES_SEARCH, "value"),
             Input(ids.NOTES_TARGET, "data"), prevent_initial_call=True)(_on_search)


def _on_action(_save, _edit, _delete, target, kind, body, editing, search):
    """Save (add, or replace the note being edited), Edit (fill the form) or Remove (a list that redraws its
    buttons presses none)."""
    trigger, value = _fired()
    if not value:
        return no_update, no_update, no_update, no_update
    reader = context.reader()
    try:
        if trigger == ids.NOTES_SAVE:
            msg, _ = logic.save(reader, target, kind, body, editing)
            return msg, logic.listing(reader, target, search), "", None
        if isinstance(trigger, dict) and trigger.get("type") == ids.NOTES_EDIT:
            msg, text, note_id = logic.start_edit(reader, int(trigger["index"]))
            return msg, no_update, text, note_id
        if isinstance(trigger, dict) and trigger.get("type") == ids.NOTES_DELETE:
            msg = logic.remove(reader, int(trigger["index"]))
            return msg, logic.listing(reader, target, search), no_update, None
    except Exception as e:  # noqa: BLE001 - the callback edge: a message, never a traceback
        return error_alert(e, reader), no_update, no_update, no_update
    return no_update, no_update, no_update, no_update


def _on_search(search, target):
    """The notes on the target, or every note holding the search text (any role)."""
    try:
        return logic.listing(context.reader(), target, search)
    except Exception as e:  # noqa: BLE001 - shown in the list's place
        return error_alert(e)
