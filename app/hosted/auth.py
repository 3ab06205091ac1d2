"""Hosted mode: users, roles, sign-in and the gate in front of every route.

Switched on with ``RNNVIS_AUTH=on`` (``Settings.auth``); :func:`install` is
called by ``create_app``. Off (open mode, the default for ``make demo``),
nothing is installed and :func:`current_user` is an implicit ``local`` admin;
``rnnvis serve`` then binds to loopback only.

Users, their roles and the users file are :mod:`app.hosted.users`' (re-exported
here).

Sessions are server-side records (:mod:`app.hosted.sessions`) named by a random id in
Flask's signed cookie (``RNNVIS_SECRET_KEY``; HttpOnly, SameSite=Lax, Secure
unless ``RNNVIS_COOKIE_SECURE=off``). A session ends when its user signs out
(``POST /logout`` with the session's form token), :data:`SESSION_HOURS` after
sign-in whatever happens in between, and when the user is removed or their
role or password changes. The user record is looked up at every request, so a
role change applies at once. Passwords follow :mod:`app.hosted.passwords`; sign-in
attempts are counted per (account, address) and per address, and slow an
account down (:mod:`app.hosted.throttle`); password checks are queued and
bounded per address and machine-wide (:mod:`app.hosted.checks`).

The gate (a ``before_request`` hook) refuses every route without a session
except ``/login``, ``/logout`` and ``/healthz``: JSON 401 for Dash's API
routes (``/_dash-*``, ``/_reload-hash``, ...) and any non-GET, a redirect to
``/login`` for everything else (pages, assets, component bundles). It caps
the request body by role before anything reads it (:mod:`app.hosted.security`). For
``/_dash-update-component`` it also checks the role a callback needs
(:data:`ROLE_BY_INPUT`: a callback fed by one of those inputs is an action),
answering a refused action with a message in the callback's first
``children`` output (or 403). Callbacks that own their action also call
:func:`require_role` themselves.
"""
from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import math
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import flask

from analytics.metadb import audit
from app import ids
from app.hosted import security
from app.hosted.checks import Busy, PasswordChecks
from app.hosted.sessions import SessionStore
from app.hosted.throttle import CONSOLE_BURST, CONSOLE_RATE, FileThrottle, RateLimiter, SignInThrottle
from app.hosted.users import (
    LOCAL,
    MAX_PASSWORD,
    MIN_PASSWORD,
    RANK,
    ROLES,
    AuthError,
    PermissionDenied,
    User,
    UserStore,
    check_name,
    check_role,
    users_path,
)

if TYPE_CHECKING:
    import dash

    from analytics.settings import Settings

log = logging.getLogger(__name__)

SESSION_HOURS = 12
PUBLIC_PATHS = frozenset({"/login", "/logout", "/healthz"})
USERS_KEY = "RNNVIS_USERS"
SESSIONS_KEY = "RNNVIS_SESSIONS"

#: Callbacks fed by these component ids (or pattern-id types) are actions needing at least this role;
#: declared next to the ids themselves (:data:`app.ids.ACTION_ROLES`).
ROLE_BY_INPUT: dict[str, str] = ids.ACTION_ROLES
#: Callbacks fed by these inputs run a console query (app.hosted.throttle's console rate applies).
_CONSOLE_INPUTS = {ids.SQL_RUN, ids.SQL_CSV, ids.SQL_PARQUET}

__all__ = ["AuthError", "LOCAL", "MAX_PASSWORD", "MIN_PASSWORD", "PermissionDenied", "PUBLIC_PATHS", "ROLES",
           "SESSION_HOURS", "User", "UserStore", "can", "check_name", "check_role", "check_user_role", "current_user",
           "form_token", "gate", "install", "refusal", "require_role", "users_path"]


# --------------------------------------------------------------------------- request helpers


def current_user() -> User | None:
    """The signed-in user of this request; the implicit ``local`` admin in open mode or outside a request;
    None in hosted mode without a session."""
    if not flask.has_request_context():
        return LOCAL
    settings = flask.current_app.config.get("RNNVIS_SETTINGS")
    if settings is None or not settings.auth:
        return LOCAL
    return flask.g.get("user")


def require_role(role: str) -> User:
    """The current user if they have ``role`` (or higher); PermissionDenied with a message otherwise."""
    return check_user_role(current_user(), role)


def check_user_role(user: User | None, role: str) -> User:
    """``user`` if they have ``role`` (or higher); PermissionDenied with a message for them otherwise."""
    if user is None:
        raise PermissionDenied("Sign in first.")
    if not user.can(role):
        raise PermissionDenied(refusal(user, role))
    return user


def refusal(user: User, role: str, what: str = "do this") -> str:
    """'Only members and admins can <what>; you are signed in as ann (viewer).'"""
    return (f"Only {role}s{' and admins' if role == 'member' else ''} can {what}; "
            f"you are signed in as {user.name} ({user.role}).")


def can(role: str) -> bool:
    user = current_user()
    return user is not None and user.can(role)


def gate(role: str, what: str) -> dict[str, object]:
    """A button's keyword arguments: disabled with a tooltip saying why for a user without ``role`` (the server
    refuses the action anyway; this only stops offering it)."""
    user = current_user()
    if user is not None and user.can(role):
        return {"disabled": False}
    return {"disabled": True, "title": refusal(user, role, what) if user else "Sign in first."}


def _user_store() -> UserStore:
    return flask.current_app.config[USERS_KEY]


def _safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _is_api(path: str) -> bool:
    return path.startswith("/_") or "/_dash-" in path


def _refuse_callback(body: dict, message: str):
    """A Dash callback response that puts ``message`` in the callback's first ``children`` output."""
    outputs = body.get("outputs")
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for out in outputs:
        if isinstance(out, dict) and out.get("property") == "children" and isinstance(out.get("id"), str):
            return flask.jsonify({"multi": True, "response": {out["id"]: {"children": message}}})
    return flask.jsonify({"error": message}), 403


def _callback_inputs(app: dash.Dash, output: str) -> set[str]:
    """The component ids (a pattern id's ``type``) of the inputs of the callback with this output key."""
    cb = app.callback_map.get(output)
    found = set()
    for inp in cb.get("inputs", []) if cb else []:
        cid = inp.get("id")
        if isinstance(cid, str) and cid.startswith("{"):
            try:
                cid = json.loads(cid).get("type")
            except ValueError:
                cid = None
        if isinstance(cid, str):
            found.add(cid)
    return found


def _callback_role(inputs: set[str]) -> str | None:
    """The role a callback with these inputs needs (None: any signed-in user)."""
    need = None
    for cid in inputs:
        role = ROLE_BY_INPUT.get(cid)
        if role and (need is None or RANK[role] > RANK[need]):
            need = role
    return need


# --------------------------------------------------------------------------- pages


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>RNNVis · Sign in</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;margin:0;display:flex;
min-height:100vh;align-items:center;justify-content:center;color:#222}}
form{{background:#fff;padding:2em 2.2em;border-radius:8px;box-shadow:0 2px 12px rgba(0,0,0,.08);width:20em}}
h1{{font-size:1.4em;margin:0 0 1em}} .a{{color:#1565c0}} .b{{color:#e65100}}
label{{display:block;font-size:.9em;margin:.8em 0 .3em}}
input{{width:100%;box-sizing:border-box;padding:.55em;border:1px solid #bbb;border-radius:4px;font-size:1em}}
button{{margin-top:1.4em;width:100%;padding:.65em;border:0;border-radius:4px;background:#1565c0;color:#fff;
font-size:1em;cursor:pointer}} .err{{color:#c62828;font-size:.9em;margin-top:.8em}}
</style></head><body>
<form method="post" action="/login" autocomplete="on">
<h1><span class="a">RNN</span><span class="b">Vis</span> · sign in</h1>
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="u">User</label><input id="u" name="username" autocomplete="username" required autofocus value="{user}">
<label for="p">Password</label><input id="p" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
{error}
</form></body></html>"""


def _esc(text: str) -> str:
    from html import escape
    return escape(text or "", quote=True)


def _login_page(error: str = "", user: str = "", status: int = 200, retry_after: float | None = None):
    token = form_token()
    nxt = _safe_next(flask.request.values.get("next"))
    body = _PAGE.format(csrf=_esc(token), next=_esc(nxt), user=_esc(user),
                        error=f'<div class="err" role="alert">{_esc(error)}</div>' if error else "")
    resp = flask.make_response(body, status)
    resp.headers["Cache-Control"] = "no-store"
    if retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return resp


_LOGOUT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RNNVis · Sign out</title>
<style>body{{font-family:system-ui,sans-serif;display:flex;min-height:100vh;align-items:center;justify-content:center}}
button{{padding:.6em 1.4em;border:0;border-radius:4px;background:#1565c0;color:#fff;font-size:1em;cursor:pointer}}
</style></head><body><form method="post" action="/logout">
<input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button>{error}</form></body></html>"""


def form_token() -> str:
    """This session's form token (made on first use): the sign-in and sign-out forms carry it ("" outside a request)."""
    if not flask.has_request_context():
        return ""
    token = flask.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = flask.session["csrf"] = secrets.token_urlsafe(24)
    return token


def sessions_path(users: UserStore) -> Path:
    """``users.sessions.json`` next to the users file."""
    return users.path.with_name(users.path.stem + ".sessions.json")


def throttle_path(users: UserStore) -> Path:
    """``users.throttle.json`` next to the users file."""
    return users.path.with_name(users.path.stem + ".throttle.json")


_REFUSED = {"locked": "Too many failed sign-ins for this account from this address, or from this address; "
                      "try again in {wait}.",
            "backoff": "Many failed sign-ins for this account lately: sign-ins for it are slowed down; "
                       "try again in {wait}."}


def _minutes_or_seconds(seconds: float) -> str:
    return f"{math.ceil(seconds / 60)} min" if seconds > 90 else f"{max(1, math.ceil(seconds))} s"


def _check_password(throttle: SignInThrottle, checks: PasswordChecks, users: UserStore, name: str, password: str):
    """(user, session version) for a right password; else the sign-in page's answer (401, or 429 when the
    throttle or the bounded checks refuse)."""
    address = flask.request.remote_addr
    verdict = throttle.attempt(name, address)           # checks the limits and counts the attempt, atomically
    if verdict.wait > 0:
        log.info("throttled sign-in (%s) for %r from %s (%.0f s left)", verdict.reason, name, address, verdict.wait)
        audit.record_burst(users.db, name, "sign-in throttled", address, verdict.reason, within_s=verdict.wait)
        return _login_page(_REFUSED[verdict.reason].format(wait=_minutes_or_seconds(verdict.wait)), user=name,
                           status=429, retry_after=verdict.wait)
    try:
        ok = checks.run(address, users.verify, name, password)
    except Busy as e:
        throttle.not_checked(verdict)
        return _login_page(str(e), user=name, status=429, retry_after=e.retry_after)
    if ok is None:
        log.info("failed sign-in for %r from %s", name, address)
        return _login_page("Wrong user name or password.", user=name, status=401)
    throttle.succeeded(verdict)
    return ok


# --------------------------------------------------------------------------- installation


def _configure_session_cookie(server: flask.Flask, settings: Settings) -> None:
    key = settings.secret_key or ""
    if len(key) < 32:
        raise ValueError("RNNVIS_AUTH=on needs RNNVIS_SECRET_KEY: a random string of at least 32 characters "
                         "(e.g. python -c 'import secrets; print(secrets.token_hex(32))'), the same for every "
                         "worker process")
    server.secret_key = key
    server.config.update(
        SESSION_COOKIE_NAME="rnnvis_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.cookie_secure),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
        SESSION_REFRESH_EACH_REQUEST=False,  # the cookie's expiry stays that of the sign-in
    )


def _form_token_ok() -> bool:
    """Whether the posted form carries this session's form token."""
    token = flask.session.get("csrf")
    return bool(token) and hmac.compare_digest(str(token), str(flask.request.form.get("csrf", "")))


def _logout(sessions: SessionStore):
    """``/logout``: GET shows the form (signing out takes a POST with the form token); POST ends the session."""
    if flask.request.method == "GET":
        if sessions.get(flask.session.get("sid")) is None:
            return flask.redirect("/login", 303)
        resp = flask.make_response(_LOGOUT_PAGE.format(csrf=_esc(form_token()), error=""))
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if not _form_token_ok():
        return flask.make_response(_LOGOUT_PAGE.format(
            csrf=_esc(form_token()), error='<p role="alert">The form expired; sign out again.</p>'), 400)
    sessions.end(flask.session.get("sid"))
    flask.session.clear()
    return flask.redirect("/login", 303)


def install(app: dash.Dash, settings: Settings) -> None:
    """Put the sign-in pages, the session cookie settings and the gate on the app's Flask server."""
    server = app.server
    _configure_session_cookie(server, settings)
    users = UserStore(users_path(settings))
    sessions = SessionStore(sessions_path(users), SESSION_HOURS * 3600)
    throttle = server.extensions["rnnvis_sign_in_throttle"] = FileThrottle(throttle_path(users))
    console_rate = server.extensions["rnnvis_console_rate"] = RateLimiter(CONSOLE_RATE, CONSOLE_BURST)  # per worker
    checks = PasswordChecks(settings.store)  # argon2 on a low-priority thread, in turn, bounded per address
    server.config[USERS_KEY] = users
    server.config[SESSIONS_KEY] = sessions
    member_cap = security.member_max_body()
    if not len(users):
        log.warning("hosted mode: no users in %s yet; add an admin with `rnnvis users add NAME --role admin`",
                    users.db)

    def login():
        if flask.request.method == "GET":
            return _login_page()
        form = flask.request.form
        if not _form_token_ok():
            hint = ("" if flask.request.is_secure or not server.config["SESSION_COOKIE_SECURE"] else
                    " (the session cookie is HTTPS-only: serve over HTTPS, or set RNNVIS_COOKIE_SECURE=off "
                    "for plain HTTP on a trusted network)")
            return _login_page("The sign-in form expired; try again." + hint, status=400)
        name = (form.get("username") or "").strip()[:64]
        ok = _check_password(throttle, checks, users, name, (form.get("password") or "")[:MAX_PASSWORD])
        if not isinstance(ok, tuple):
            return ok
        user, version = ok
        flask.session.clear()  # a fresh session: no fixation
        flask.session.permanent = True
        flask.session.update(sid=sessions.create(user.name, version), csrf=secrets.token_urlsafe(24))
        log.info("%s signed in (%s)", user.name, user.role)
        return flask.redirect(_safe_next(form.get("next")), 303)

    server.add_url_rule("/login", "rnnvis_login", login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "rnnvis_logout", lambda: _logout(sessions), methods=["GET", "POST"])

    @server.before_request
    def _gate():
        req = flask.request
        path = req.path
        if path in PUBLIC_PATHS:
            return security.refuse_large_body(security.ANONYMOUS_MAX_BODY)
        rec = sessions.get(flask.session.get("sid"))
        user = users.user(str(rec.get("user")), str(rec.get("v", ""))) if rec else None
        if user is None:
            too_big = security.refuse_large_body(security.ANONYMOUS_MAX_BODY)
            if too_big is not None:
                return too_big
            if _is_api(path) or req.method != "GET":
                return flask.jsonify({"error": "sign in first", "login": "/login"}), 401
            target = req.full_path if req.query_string else path
            return flask.redirect(f"/login?next={quote(target, safe='/?=&')}", 302)
        flask.g.user = user
        # the role's body cap before anything reads the body (viewers never upload)
        too_big = security.refuse_large_body(member_cap if user.can("member") else security.VIEWER_MAX_BODY)
        if too_big is not None:
            return too_big
        if req.method == "POST" and path.endswith("/_dash-update-component"):
            body = req.get_json(silent=True)
            body = body if isinstance(body, dict) else {}  # malformed: app.inputs answers it 400
            inputs = _callback_inputs(app, str(body.get("output", "")))
            need = _callback_role(inputs)
            if need and not user.can(need):
                log.info("refused %s (%s) a %s action: %s", user.name, user.role, need, body.get("output"))
                return _refuse_callback(body, refusal(user, need))
            if inputs & _CONSOLE_INPUTS and not console_rate.allow(user.name):  # a query run or a download
                return _refuse_callback(body, f"You are sending queries faster than {CONSOLE_RATE:g} a second; "
                                              "wait a moment and run it again.")
        return None
