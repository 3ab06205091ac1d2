"""Team notes as the app shows them: the panel's list and actions (Unit page, Models page), the markers on
Explore's chips, and the ``notes`` table of the SQL console.

Rights, checked here on the server for every action (the buttons offered follow them, nothing more): every
signed-in role reads notes; members and admins write notes and edit their own; a member removes their own,
an admin any (audited when it is someone else's). Open mode's local user is an admin. A note's body is plain
text, always rendered as text (Dash escapes it; Plotly's hover gets it entity-escaped).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from dash import dcc, html

from analytics import metadb
from analytics.metadb import audit
from analytics.metadb import notes as store
from app import ids
from app.hosted import auth
from app.logic.common import alert
from app.reader import Reader
from app.urlstate import ViewState, href

__all__ = ["MAX_BODY", "target_of", "listing", "save", "start_edit", "remove", "chip_notes", "sql_table",
           "kind_options"]

MAX_BODY = store.MAX_BODY
_LIST_ROWS = 200
_HOVER_CHARS = 300


def target_of(data: Any) -> store.Target | None:
    """The panel's target (its ``dcc.Store``), or None when it names no model."""
    if not isinstance(data, dict) or not data.get("model_id"):
        return None
    return store.Target(**{k: data.get(k) for k in store.Target._fields})


def kind_options(target: store.Target | None) -> list[dict[str, str]]:
    """What a new note can be on, from the panel's target."""
    if target is None:
        return []
    if target.unit is None:
        return [{"label": f" the model {target.model_id}", "value": "model"}]
    unit = [{"label": f" unit {target.unit}", "value": "unit"}]
    if target.cluster is None:
        return unit
    return unit + [{"label": f" its cluster H{target.cluster} (k={target.k})", "value": "cluster"}]


def _checked(reader: Reader, target: store.Target | None, kind: str | None) -> store.Target:
    """The note's target for ``kind`` (its parts checked against the store: a forged target is refused)."""
    if target is None:
        raise store.NoteError("Pick a model to note.")
    reader.model(target.model_id)                      # UnknownModelError (listing the known ids) otherwise
    if kind == "model":
        return store.Target(target.model_id)
    states = reader.layer_states(target.model_id)
    if target.layer not in states or target.state not in states[target.layer]:
        raise store.NoteError(f"{target.model_id} has no layer {target.layer} state {target.state}.")
    if kind == "unit":
        hidden = int(reader.model(target.model_id)["hidden_size"])
        if target.unit is None or not 0 <= target.unit < hidden:
            raise store.NoteError(f"{target.model_id} has units 0 to {hidden - 1}.")
        return store.Target(target.model_id, target.layer, target.state, unit=target.unit)
    if kind == "cluster":
        if target.k is None or target.cluster is None or not 0 <= target.cluster < target.k:
            raise store.NoteError("Pick a cluster H0 .. H(k-1) to note.")
        return store.Target(target.model_id, target.layer, target.state, target.k, target.cluster)
    raise store.NoteError("Say what the note is on: the model, the cluster or the unit.")


def _may_change(me: auth.User, note: dict, *, removing: bool) -> None:
    """PermissionDenied unless ``me`` may edit (own notes) or remove (own; an admin: any) ``note``."""
    if note["author"] == me.name or (removing and me.can("admin")):
        return
    what = "remove" if removing else "edit"
    who = "their own notes; admins can remove any" if removing else "their own notes"
    raise auth.PermissionDenied(f"Members can {what} only {who}: this note is {note['author']}'s "
                                f"(you are {me.name}, {me.role}).")


def save(reader: Reader, target_data: Any, kind: str | None, body: Any, editing: int | None) -> tuple[Any, bool]:
    """Add a note (or replace the body of note ``editing``): (the message, whether the form is done)."""
    me = auth.require_role("member")
    root = reader.root
    if editing is not None:
        note = store.get(root, editing)
        if note is None:
            raise store.NoteError("That note is gone (removed meanwhile); reload the page.")
        _may_change(me, note, removing=False)
        cut = store.edit(root, editing, body)
        done = "Note saved."
    else:
        target = _checked(reader, target_of(target_data), kind)
        _, cut = store.add(root, target, body, me.name)
        done = f"Note added on {target.describe()}."
    if cut:
        return alert(f"{done} It was longer than {MAX_BODY:,} characters and was cut there; edit it to say it "
                     "in fewer words.", kind="warning"), True
    return alert(done, kind="info"), True


def start_edit(reader: Reader, note_id: int) -> tuple[Any, str, int]:
    """(message, body to edit, note id) for an Edit button."""
    me = auth.require_role("member")
    note = store.get(reader.root, note_id)
    if note is None:
        raise store.NoteError("That note is gone (removed meanwhile); reload the page.")
    _may_change(me, note, removing=False)
    return alert("Editing your note: change it and press Save.", kind="info"), note["body"], int(note_id)


def remove(reader: Reader, note_id: int) -> Any:
    """Remove a note (its author, or an admin): the message."""
    me = auth.require_role("member")
    note = store.get(reader.root, note_id)
    if note is None:
        return alert("That note was removed already.", kind="info")
    _may_change(me, note, removing=True)
    store.remove(reader.root, note_id)
    if note["author"] != me.name:
        audit.record(reader.root, me.name, "note removed", note["model_id"],
                     {"author": note["author"], "body": note["body"][:200]})
    return alert("Note removed.", kind="info")


def _on(r: Any) -> str:
    if pd.notna(r.unit):
        return f"{r.model_id} · layer {r.layer} {r.state} · unit {r.unit}"
    if pd.notna(r.cluster):
        return f"{r.model_id} · layer {r.layer} {r.state} · cluster H{r.cluster} (k={r.k})"
    return f"model {r.model_id}"


def _link(r: Any) -> Any:
    if pd.notna(r.unit):
        vs = ViewState(model=r.model_id, layer=int(r.layer), state=r.state, unit=int(r.unit))
        return dcc.Link(_on(r), href=href("/unit", vs))
    if pd.notna(r.cluster):
        return dcc.Link(_on(r), href=href("/explore", ViewState(model=r.model_id, layer=int(r.layer), state=r.state,
                                                                 k=int(r.k))))
    return html.Span(_on(r))


def _row(r: Any, me: auth.User | None) -> html.Li:
    when = str(r.created_at)[:16] + (" (edited)" if pd.notna(r.edited_at) else "")
    buttons = []
    if me is not None and me.can("member") and r.author == me.name:
        buttons.append(html.Button("Edit", id={"type": ids.NOTES_EDIT, "index": int(r.id)}, className="btn btn-sm"))
    if me is not None and me.can("member") and (r.author == me.name or me.can("admin")):
        buttons.append(html.Button("Remove", id={"type": ids.NOTES_DELETE, "index": int(r.id)},
                                   className="btn btn-sm btn-danger"))
    return html.Li([html.Div(r.body, className="note-body"),
                    html.Div([html.B(r.author), f" · {when} UTC · ", _link(r), *buttons],
                             className="note-meta small muted")], className="note")


def _frame(root: Path, target: store.Target | None, text: str | None) -> pd.DataFrame:
    if text:
        return store.query(root, text=text, limit=_LIST_ROWS)
    if target is None:
        return store.query(root, limit=_LIST_ROWS)
    if target.unit is None:
        return store.query(root, model_id=target.model_id, limit=_LIST_ROWS)
    t = target
    units = store.query(root, model_id=t.model_id, layer=t.layer, state=t.state, unit=t.unit, limit=_LIST_ROWS)
    clusters = store.query(root, model_id=t.model_id, layer=t.layer, state=t.state, kind="cluster", k=t.k,
                           limit=_LIST_ROWS)
    clusters = clusters[clusters["cluster"] == t.cluster]
    return pd.concat([units, clusters], ignore_index=True) if len(clusters) else units


def listing(reader: Reader, target_data: Any, text: str | None = None) -> Any:
    """The panel's list: the notes on its target (on the Unit page, the unit's and its cluster's at k; on the
    Models page, all of the model's), or with ``text`` every note whose body holds it."""
    text = (text or "").strip()
    df = _frame(reader.root, target_of(target_data), text)
    if df.empty:
        return html.P(f"No note holds “{text}”." if text else "No notes yet.", className="muted small")
    me = auth.current_user()
    head = html.P(f"{len(df)} notes hold “{text}”:" if text else f"{len(df)} notes:", className="small muted")
    return [head, html.Ul([_row(r, me) for r in df.itertuples(index=False)], className="notes-list")]


def _hover(df: pd.DataFrame) -> str:
    lines = []
    for r in df.itertuples(index=False):
        body = r.body if len(r.body) <= _HOVER_CHARS else r.body[:_HOVER_CHARS - 1] + "…"
        lines.append(f"{r.author}: {body}")
    return "\n".join(lines)


def chip_notes(root: Path, model: str, layer: int, state: str, k: int) -> tuple[dict[int, str], dict[int, str]]:
    """({cluster: its notes at k}, {unit: its notes}) for Explore's chips, each as plain text, one note a line."""
    df = store.query(root, model_id=model, layer=int(layer), state=state, limit=store.MAX_ROWS)
    clusters = df[df["cluster"].notna() & (df["k"] == int(k))]
    units = df[df["unit"].notna()]
    return ({int(c): _hover(g) for c, g in clusters.groupby("cluster")},
            {int(u): _hover(g) for u, g in units.groupby("unit")})


def sql_table(root: str | Path) -> pa.Table:
    """The ``notes`` table every role's SQL query reads (the newest :data:`store.MAX_ROWS` notes)."""
    df = store.query(metadb.for_store(root), limit=store.MAX_ROWS)[list(store.COLUMNS)]
    schema = pa.schema([("model_id", pa.string()), ("layer", pa.int32()), ("state", pa.string()),
                        ("k", pa.int32()), ("cluster", pa.int32()), ("unit", pa.int32()), ("body", pa.string()),
                        ("author", pa.string()), ("created_at", pa.timestamp("us"))])
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)
