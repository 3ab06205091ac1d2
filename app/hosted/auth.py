"""Hosted mode: users, roles, sign-in and the gate in front of every route.

Switched on with ``RNNVIS_AUTH=on`` (``Settings.auth``); :func:`install` is
called by ``create_app``. Off (open mode, the default for ``make demo``),
nothing is installed and :func:`current_user` is an implicit ``local`` admin;
``rnnvis serve`` then binds to loopback only.

Users, their roles and the users file are :mod:`app.hosted.users`' (re-exported
here).

Signing in and out is :mod:`app.hosted.signin`'s: Flask-Login on server-side
session records (:mod:`app.hosted.sessions`) whose id sits in Flask's signed
cookie (``RNNVIS_SECRET_KEY``; HttpOnly, SameSite=Lax, Secure unless
``RNNVIS_COOKIE_SECURE=off``), Flask-WTF's form tokens, Jinja pages. A session
ends when its user signs out (``POST /logout`` with the form token),
:data:`SESSION_HOURS` after sign-in whatever happens in between, and when the
user is removed or their role or password changes. The user record is looked up
at every request, so a role change applies at once. Passwords follow
:mod:`app.hosted.passwords`; sign-in attempts are counted per (account,
address) and per address, and slow an account down, in Flask-Limiter's Redis
storage (:mod:`app.hosted.throttle`); password checks are queued and bounded per
address and machine-wide (:mod:`app.hosted.checks`).

The gate (a ``before_request`` hook) refuses every route without a session
except ``/login``, ``/logout`` and ``/healthz``: JSON 401 for Dash's API
routes (``/_dash-*``, ``/_reload-hash``, ...) and any non-GET, a redirect to
``/login`` for everything else (pages, assets, component bundles). It caps
the request body by role before anything reads it (:mod:`app.hosted.security`),
and answers a POST to Dash's routes that is not JSON with 415 (Dash's own
CSRF defence: a cross-site form cannot send JSON, see :mod:`app.hosted.signin`). For
``/_dash-update-component`` it also checks the role a callback needs
(:data:`ROLE_BY_INPUT`: a callback fed by one of those inputs is an action),
answering a refused action with a message in the callback's first
``children`` output (or 403). Callbacks that own their action also call
:func:`require_role` themselves.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import flask
import flask_login

from app import ids
from app.hosted import security, signin, throttle
from app.hosted.checks import PasswordChecks
from app.hosted.sessions import SessionStore
from app.hosted.signin import SESSION_HOURS, form_token
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
    signed = flask_login.current_user          # loaded from the server-side session (app.hosted.signin)
    return signed.user if signed.is_authenticated else None


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


def sessions_path(users: UserStore) -> Path:
    """``users.sessions.json`` next to the users file."""
    return users.path.with_name(users.path.stem + ".sessions.json")


# --------------------------------------------------------------------------- installation


def install(app: dash.Dash, settings: Settings) -> None:
    """Put the sign-in pages, the session cookie settings, the limits and the gate on the app's Flask server."""
    server = app.server
    signin.configure(server, settings)
    users = UserStore(users_path(settings))
    sessions = SessionStore(sessions_path(users), SESSION_HOURS * 3600)
    server.config[USERS_KEY] = users
    server.config[SESSIONS_KEY] = sessions
    member_cap = security.member_max_body()
    if not len(users):
        log.warning("hosted mode: no users in %s yet; add an admin with `rnnvis users add NAME --role admin`",
                    users.db)

    @server.before_request          # registered before the extensions' hooks: the body cap comes first
    def _gate():
        req = flask.request
        path = req.path
        if path in PUBLIC_PATHS:
            return security.refuse_large_body(security.ANONYMOUS_MAX_BODY)
        user = current_user()
        if user is None:
            too_big = security.refuse_large_body(security.ANONYMOUS_MAX_BODY)
            if too_big is not None:
                return too_big
            if _is_api(path) or req.method != "GET":
                return flask.jsonify({"error": "sign in first", "login": "/login"}), 401
            target = req.full_path if req.query_string else path
            return flask.redirect(f"/login?next={quote(target, safe='/')}", 302)  # the whole query in next
        # the role's body cap before anything reads the body (viewers never upload)
        too_big = security.refuse_large_body(member_cap if user.can("member") else security.VIEWER_MAX_BODY)
        if too_big is not None:
            return too_big
        if req.method == "POST" and _is_api(path) and not req.is_json:
            # Dash posts JSON; a cross-site form cannot (without a CORS preflight this server never grants)
            return flask.jsonify({"error": "Dash requests are JSON (Content-Type: application/json)"}), 415
        if req.method == "POST" and path.endswith("/_dash-update-component"):
            return _check_callback(app, user, console_rate)
        return None

    limiter = throttle.make_limiter(server, settings)
    prefix = settings.ratelimit_prefix
    server.extensions["rnnvis_sign_in_throttle"] = sign_ins = throttle.SignInThrottle(limiter, prefix)
    server.extensions["rnnvis_console_rate"] = console_rate = throttle.ConsoleRate(limiter, prefix)
    checks = PasswordChecks(settings.store)  # argon2 on a low-priority thread, in turn, bounded per address
    signin.install(server, users, sessions, sign_ins, checks)


def _check_callback(app: dash.Dash, user: User, console_rate: throttle.ConsoleRate):
    """A refusal for a callback request that needs a role ``user`` lacks, or a console query over the rate."""
    body = flask.request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}  # malformed: app.inputs answers it 400
    inputs = _callback_inputs(app, str(body.get("output", "")))
    need = _callback_role(inputs)
    if need and not user.can(need):
        log.info("refused %s (%s) a %s action: %s", user.name, user.role, need, body.get("output"))
        return _refuse_callback(body, refusal(user, need))
    if inputs & _CONSOLE_INPUTS and not console_rate.allow(user.name):  # a query run or a download
        return _refuse_callback(body, f"You are sending queries faster than {throttle.CONSOLE_RATE:g} a second; "
                                      "wait a moment and run it again.")
    return None
