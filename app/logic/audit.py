"""The audit log as the app shows it: the Admin page's filtered table and an admin's SQL ``audit`` table.

Events live in the metadata database (:mod:`analytics.metadb.audit`). With SQLite and the users file outside
the store (``RNNVIS_USERS_FILE``) the user events are in the users file's database and the job and model
events in the store's; both are read and merged here. With PostgreSQL both are one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
import pandas as pd
import pyarrow as pa
from dash import html

from analytics import metadb
from analytics.metadb import audit
from app.hosted import auth

__all__ = ["databases", "frame", "sql_table", "table", "ACTIONS", "PAGE_ROWS"]

ACTIONS = audit.ACTIONS
PAGE_ROWS = 500


def databases(root: str | Path) -> list[metadb.Database]:
    """The store's metadata database, and the users' one if hosted mode keeps them elsewhere."""
    dbs = [metadb.for_store(root)]
    users = flask.current_app.config.get(auth.USERS_KEY) if flask.has_app_context() else None
    if users is not None and users.db is not dbs[0]:
        dbs.append(users.db)
    return dbs


def frame(root: str | Path, *, action: str | None = None, who: str | None = None, text: str | None = None,
          limit: int = PAGE_ROWS) -> pd.DataFrame:
    """Events, newest first, filtered (exact action and who; ``text`` anywhere in target or details)."""
    parts = [audit.query(db, action=action, who=who, text=text, limit=limit) for db in databases(root)]
    df = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return df.sort_values("happened_at", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def sql_table(root: str | Path) -> pa.Table:
    """The ``audit`` table an admin's SQL query reads (the newest :data:`audit.MAX_ROWS` events)."""
    df = frame(root, limit=audit.MAX_ROWS)
    schema = pa.schema([("happened_at", pa.timestamp("us")), ("who", pa.string()), ("action", pa.string()),
                        ("target", pa.string()), ("details", pa.string())])
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def table(df: pd.DataFrame) -> Any:
    """The Admin page's table of events (text only: every cell is escaped by Dash)."""
    if df.empty:
        return html.P("No events match.", className="muted")
    head = html.Thead(html.Tr([html.Th(c) for c in ("when (UTC)", "who", "action", "target", "details")]))
    rows = [html.Tr([html.Td(str(r.happened_at)[:19]), html.Td(r.who), html.Td(r.action), html.Td(r.target or ""),
                     html.Td(r.details or "", className="small")]) for r in df.itertuples(index=False)]
    return html.Table([head, html.Tbody(rows)], className="table audit-table")
