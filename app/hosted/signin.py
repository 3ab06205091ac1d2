"""Signing in and out: the pages (Jinja templates), Flask-Login on the server-side sessions, Flask-WTF's form tokens.

- **Sessions.** Flask-Login keeps the signed-in "user" in Flask's signed cookie; that user's id is the
  id of a server-side session (:class:`app.hosted.sessions.SessionStore`), and :func:`install`'s user
  loader turns it back into a :class:`SignedIn` at each request only while the record is live (not
  signed out, not past its 12 h, the user's session version unchanged). Session protection (binding a
  session to the client's address) stays off: users move between networks, and the record already ends.
- **Form tokens.** Flask-WTF's CSRF tokens (signed by ``RNNVIS_SECRET_KEY``, valid for the session's
  lifetime) in the sign-in and sign-out forms, field ``csrf``, checked on those two POSTs only
  (``WTF_CSRF_CHECK_DEFAULT`` off). Dash's own POSTs (``/_dash-update-component``) carry JSON: a
  cross-site page cannot send that with the cookie (SameSite=Lax, no CORS), and the gate refuses any
  other body type there (:mod:`app.hosted.auth`).
- **Throttling.** The password is checked on :class:`app.hosted.checks.PasswordChecks`' thread, and the
  sign-in limits are checked and counted there, just before it (:mod:`app.hosted.throttle`).
  :func:`_burst` is the one place a burst of failures that fills a limit is seen (once per limit);
  :func:`_throttled` answers each attempt refused after it.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import flask
import flask_login
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

from analytics.metadb import audit
from app.hosted.checks import Busy, PasswordChecks
from app.hosted.sessions import SessionStore
from app.hosted.throttle import LimitsUnavailable, SignInThrottle, Verdict
from app.hosted.users import MAX_PASSWORD, User, UserStore

if TYPE_CHECKING:
    from analytics.settings import Settings

__all__ = ["SESSION_HOURS", "SignedIn", "configure", "form_token", "install", "safe_next"]

log = logging.getLogger(__name__)

SESSION_HOURS = 12

_REFUSED = {"locked": "Too many failed sign-ins for this account from this address, or from this address; "
                      "try again in {wait}.",
            "backoff": "Many failed sign-ins for this account lately: sign-ins for it are slowed down; "
                       "try again in {wait}."}
_NO_LIMITS = "Signing in is unavailable for a moment (the server cannot reach its rate-limit store); try again soon."


class SignedIn(flask_login.UserMixin):
    """Flask-Login's user: the user record and the id of the server-side session it signed in with."""

    def __init__(self, user: User, session_id: str):
        self.user, self.id = user, session_id


def form_token() -> str:
    """This session's form token (Flask-WTF's; made on first use); "" outside a request."""
    return generate_csrf() if flask.has_request_context() else ""


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _page(template: str, status: int = 200, retry_after: float | None = None, **values) -> flask.Response:
    resp = flask.make_response(flask.render_template(template, **values), status)
    resp.headers["Cache-Control"] = "no-store"
    if retry_after is not None:
        resp.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return resp


def _login_page(error: str = "", user: str = "", status: int = 200, retry_after: float | None = None):
    return _page("rnnvis/login.html", status, retry_after, error=error, user=user,
                 next=safe_next(flask.request.values.get("next")))


def _minutes_or_seconds(seconds: float) -> str:
    return f"{math.ceil(seconds / 60)} min" if seconds > 90 else f"{max(1, math.ceil(seconds))} s"


def _burst(users: UserStore, verdict: Verdict, filled: list[str]) -> None:
    """A burst of failed sign-ins just filled a limit (``filled``: "pair", "address", "account"): from here on it
    is throttled. The one place such a burst is seen, once per limit filled (the audit log records it here)."""
    log.warning("sign-in failures for %r from %s filled the %s limit: further attempts are throttled",
                verdict.account, verdict.address, " and ".join(filled))
    audit.record_burst(users.db, verdict.account, "sign-in throttled", verdict.address, " and ".join(filled))


def _throttled(verdict: Verdict) -> flask.Response:
    """The answer to a sign-in attempt the throttle refused (429), each one of a throttled burst."""
    log.info("throttled sign-in (%s) for %r from %s (%.0f s left)", verdict.reason, verdict.account,
             verdict.address, verdict.wait)
    return _login_page(_REFUSED[verdict.reason].format(wait=_minutes_or_seconds(verdict.wait)), user=verdict.account,
                       status=429, retry_after=verdict.wait)


def _check_password(throttle: SignInThrottle, checks: PasswordChecks, users: UserStore, name: str, password: str):
    """(user, session version) for a right password; else the sign-in page's answer (401; 429 when the throttle
    or the bounded checks refuse; 503 when the throttle's storage is unreachable: sign-in fails closed)."""
    address = flask.request.remote_addr

    def counted_check() -> tuple[Verdict, tuple[User, str] | None, list[str]]:   # on the checking thread, in turn
        verdict = throttle.attempt(name, address)                    # checks the limits and counts, atomically
        if verdict.wait > 0:
            return verdict, None, []
        ok = users.verify(name, password)
        if ok:
            throttle.succeeded(verdict)
        return verdict, ok, [] if ok else throttle.failed(verdict)
    try:
        verdict, ok, filled = checks.run(address, counted_check)
    except Busy as e:
        return _login_page(str(e), user=name, status=429, retry_after=e.retry_after)
    except LimitsUnavailable as e:
        log.error("sign-in refused: the rate-limit storage is unreachable (%s)", e)
        return _login_page(_NO_LIMITS, user=name, status=503, retry_after=30)
    if verdict.wait > 0:
        return _throttled(verdict)
    if filled:
        _burst(users, verdict, filled)
    if ok is None:
        log.info("failed sign-in for %r from %s", name, address)
        return _login_page("Wrong user name or password.", user=name, status=401)
    return ok


def configure(server: flask.Flask, settings: Settings) -> None:
    """The session cookie's and the form tokens' settings (a secret key of 32+ characters is required)."""
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
        WTF_CSRF_CHECK_DEFAULT=False,        # only the sign-in and sign-out forms (Dash posts JSON: see above)
        WTF_CSRF_FIELD_NAME="csrf", WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
        # no Referer check on HTTPS: the token and SameSite=Lax already tie the form to this site, and some
        # proxies and privacy settings drop the header (a sign-in would then fail for no reason the user sees)
        WTF_CSRF_SSL_STRICT=False,
    )


def install(server: flask.Flask, users: UserStore, sessions: SessionStore, throttle: SignInThrottle,
            checks: PasswordChecks) -> None:
    """``/login`` and ``/logout``, Flask-Login's manager (user loader on ``sessions``) and Flask-WTF's CSRF."""
    csrf = CSRFProtect(server)
    manager = flask_login.LoginManager(server)
    manager.session_protection = None

    @manager.user_loader
    def _load(session_id: str) -> SignedIn | None:
        rec = sessions.get(session_id)
        user = users.user(str(rec.get("user")), str(rec.get("v", ""))) if rec else None
        return SignedIn(user, session_id) if user else None

    def form_ok() -> bool:
        try:
            csrf.protect()
        except CSRFError:
            return False
        return True

    bp = flask.Blueprint("rnnvis_sign_in", __name__, template_folder="templates")

    @bp.route("/login", methods=["GET", "POST"])
    def login():
        if flask.request.method == "GET":
            return _login_page()
        form = flask.request.form
        if not form_ok():
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
        flask_login.login_user(SignedIn(user, sessions.create(user.name, version)))
        generate_csrf()        # its form token, in the cookie set now (using the session re-sends nothing)
        log.info("%s signed in (%s)", user.name, user.role)
        return flask.redirect(safe_next(form.get("next")), 303)

    @bp.route("/logout", methods=["GET", "POST"])
    def logout():
        """GET shows the form (signing out takes a POST with the form token); POST ends the session."""
        signed = flask_login.current_user
        if flask.request.method == "GET":
            return _page("rnnvis/logout.html") if signed.is_authenticated else flask.redirect("/login", 303)
        if not form_ok():
            return _page("rnnvis/logout.html", 400, error="The form expired; sign out again.")
        if signed.is_authenticated:
            sessions.end(signed.get_id())
        flask_login.logout_user()
        flask.session.clear()
        return flask.redirect("/login", 303)

    server.register_blueprint(bp)
