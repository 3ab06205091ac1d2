"""The dashboard in open mode and in hosted mode (a viewer and a member) on a throw-away copy of a store, for
the tests that post hostile callback requests."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from analytics.settings import Settings

USERS = {"vera": ("viewer-pass-1", "viewer"), "mo": ("member-pass-1", "member")}


def build_apps(store: Path, tmp: Path) -> tuple:
    """(open app, hosted app) over one copy of ``store`` under ``tmp`` (callbacks may queue jobs, add sentences)."""
    from app.hosted import auth
    from app.server import create_app

    root = tmp / "store"
    shutil.copytree(store, root, ignore=shutil.ignore_patterns(".staging"))
    users = auth.UserStore(tmp / "users.json")
    for name, (pw, role) in USERS.items():
        users.add(name, pw, role, created_by="test")
    apps = []
    for settings in (Settings(store=root), Settings(store=root, auth=True, secret_key="f" * 48,
                                                     users_file=users.path, cookie_secure=False)):
        app = create_app(settings)
        app.server.test_client().get("/healthz")  # the first request registers the pages' callbacks (before
        apps.append(app)                          # another app is built: Dash hands them to one app only)
    return tuple(apps)


def client(app, user: str | None = None):
    """A test client of ``app``, signed in as ``user`` (None: open mode, no sign-in)."""
    c = app.server.test_client()
    if user:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        assert c.post("/login", data={"username": user, "password": USERS[user][0], "csrf": token}).status_code == 303
    return c
