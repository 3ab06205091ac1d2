"""Admin page: users (add, change role, remove) and model deletion. Every action checks the admin role."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import html

from analytics import store
from analytics.metadb import audit, notes
from app.hosted import auth
from app.logic.common import alert
from app.reader import Reader
from models.checkpoint import checkpoint_file
from workers.claims import release_model_id


def users_table(users: auth.UserStore | None) -> Any:
    if users is None:
        return alert("Open mode: there are no users (everyone on this machine is the local admin). Set "
                     "RNNVIS_AUTH=on to sign users in.", kind="info")
    rows = [html.Tr([html.Td(html.B(u["name"])), html.Td(u["role"]), html.Td(str(u.get("created_at") or "")[:19]),
                     html.Td(u.get("created_by") or "")]) for u in users.list()]
    return html.Table([html.Thead(html.Tr([html.Th(c) for c in ("user", "role", "created", "by")])),
                       html.Tbody(rows)], className="table users-table")


def user_options(users: auth.UserStore | None) -> list[dict[str, str]]:
    return [] if users is None else [{"label": f"{u['name']} ({u['role']})", "value": u["name"]} for u in users.list()]


def model_options(reader: Reader) -> list[dict[str, str]]:
    return [{"label": m, "value": m} for m in reader.model_ids()]


def act(users: auth.UserStore | None, reader: Reader, action: str | None, *, new_name: str | None = None,
        new_role: str | None = None, new_password: str | None = None, user: str | None = None,
        role: str | None = None, model: str | None = None) -> Any:
    """Do one admin action (after checking the current user is an admin); returns a message."""
    me = auth.require_role("admin")
    if action is None:
        return ""
    if action == "delete-model":
        if not model:
            return alert("Pick a model to delete.", kind="info")
        store.delete_partition(reader.root, "models", model)
        checkpoint_file(Path(reader.root), model).unlink(missing_ok=True)
        release_model_id(reader.root, model)
        gone = notes.remove_model(reader.root, model)   # its notes go with it
        audit.record(reader.root, me.name, "model deleted", model,
                     f"Admin page; {gone} notes removed" if gone else "Admin page")
        return alert(f"Deleted model {model}.", kind="info")
    if users is None:
        return alert("Open mode has no users to manage.", kind="info")
    if action == "add":
        users.add((new_name or "").strip(), new_password or "", new_role or "viewer", created_by=me.name)
        return alert(f"Added {new_name} ({new_role or 'viewer'}).", kind="info")
    if not user:
        return alert("Pick a user.", kind="info")
    if action == "set-role":
        if user == me.name and role != "admin":
            return alert("You cannot take the admin role from yourself; ask another admin.")
        users.set_role(user, role or "viewer", by=me.name)
        return alert(f"{user} is now {role}.", kind="info")
    if action == "remove":
        if user == me.name:
            return alert("You cannot remove yourself; ask another admin.")
        users.remove(user, by=me.name)
        return alert(f"Removed {user}.", kind="info")
    raise ValueError(f"unknown action {action!r}")
