"""What every request and response passes through, in both modes: body-size caps, security headers, loopback.

- **Body caps**: a request body larger than its cap is answered 413 before any of it is read (the
  ``Content-Length`` is checked first; a chunked body is spooled to a temporary file, 64 KB at a time,
  and cut at the cap with nothing of it kept), and the connection is closed. Caps:
  :data:`ANONYMOUS_MAX_BODY` without a session (the sign-in form), and with one, :data:`VIEWER_MAX_BODY`
  below member (viewers send queries and clicks, never files), else
  :func:`member_max_body` (uploads travel base64-encoded in callback bodies). Flask's
  ``MAX_CONTENT_LENGTH`` is the largest of them. Hosted mode's gate applies the cap of the signed-in
  role before it parses a callback body to check the role the callback needs.
- **Headers** on every response: a Content-Security-Policy that Dash works with (scripts only from
  this server, plus the hashes of Dash's own inline scripts: the renderer's start and clientside
  callbacks; inline styles, which Dash and plotly.js set; images from data: and blob: URLs for figure
  exports), ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: same-origin``, and in hosted
  mode with Secure cookies, ``Strict-Transport-Security``.
- **Behind reverse proxies** (``RNNVIS_PROXY_HOPS=N``): the client's address and scheme are taken
  from the last N ``X-Forwarded-For`` / ``X-Forwarded-Proto`` entries (sign-in throttling counts
  per client address; ``is_secure`` follows the proxy's TLS), only for requests that come from a unix
  socket or a loopback address (:class:`TrustedProxyFix`): the proxy, on this machine. See
  ``docs/security-hosted.md``.
- **Open mode serves loopback only**: :func:`check_open_bind` refuses to build the app for gunicorn
  (``create_wsgi``) when sign-in is off and gunicorn binds a non-loopback address, and a request
  that reached an open-mode gunicorn through a non-loopback address is refused (403).
"""
from __future__ import annotations

import ipaddress
import logging
import sys
import tempfile
from typing import TYPE_CHECKING

import flask

if TYPE_CHECKING:
    import dash

    from analytics.settings import Settings

__all__ = ["ANONYMOUS_MAX_BODY", "VIEWER_MAX_BODY", "member_max_body", "refuse_large_body", "install",
           "content_security_policy", "check_open_bind", "gunicorn_binds", "gunicorn_workers",
           "is_loopback", "TrustedProxyFix"]

log = logging.getLogger(__name__)

ANONYMOUS_MAX_BODY = 16 << 10
VIEWER_MAX_BODY = 1 << 20
HSTS = "max-age=31536000"
_SPOOL_PIECE = 64 << 10
_SPOOL_IN_MEMORY = 1 << 20


def member_max_body() -> int:
    """The largest body a member may send: two uploads at ``RNNVIS_MAX_UPLOAD_MB``, base64-encoded, and the rest."""
    from workers.settings import JobSettings
    return 2 * (JobSettings.from_env().max_upload_bytes * 4 // 3) + (4 << 20)


def _spool_chunked(environ: dict, cap: int) -> int | None:
    """Read a chunked body (no ``Content-Length``) into a temporary file, 64 KB at a time, and hand the request
    that file and its length: the body's size, or None (nothing kept) once it passes ``cap``.

    Werkzeug would read it into one growing buffer up to the cap and then fail; that buffer (145 MB for a member)
    stayed resident, +307 MB in a gunicorn worker. Here no more than one 64 KB piece and the spool's first
    megabyte are ever in memory."""
    src, size = environ["wsgi.input"], 0
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - the request reads it later
    while chunk := src.read(min(_SPOOL_PIECE, cap + 1 - size)):
        size += len(chunk)
        if size > cap:
            spool.close()
            return None
        spool.write(chunk)
    spool.seek(0)
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = spool, str(size)
    flask.after_this_request(lambda resp: (spool.close(), resp)[1])
    return size


def refuse_large_body(cap: int) -> flask.Response | None:
    """A 413 response if this request's body is over ``cap`` bytes (nothing of it read), else None.

    A chunked body (no length) is spooled to a temporary file while it is counted (:func:`_spool_chunked`),
    and refused at ``cap`` with nothing of it kept.
    """
    req = flask.request
    req.max_content_length = cap
    n = req.content_length
    if n is None and req.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        n = _spool_chunked(req.environ, cap)
        if n is None:
            return _too_large(f"the request body is over the limit here, {cap:,} bytes", cap)
    if n is None or n <= cap:
        return None
    return _too_large(f"the request body is {n:,} bytes; the limit here is {cap:,}", cap)


def _too_large(message: str, cap: int) -> flask.Response:
    req = flask.request
    log.info("refused a body to %s %s: %s", req.method, req.path, message)
    if req.path.startswith("/_") or "/_dash-" in req.path:
        resp = flask.jsonify({"error": message})
    else:
        resp = flask.make_response(message + "\n")
        resp.mimetype = "text/plain"
    resp.status_code = 413
    resp.headers["Connection"] = "close"  # do not read the rest of it to keep the connection
    return resp


def content_security_policy(app: dash.Dash) -> str:
    """The CSP of the dashboard: Dash's inline scripts by hash, nothing else inline but styles."""
    hashes = " ".join(app.csp_hashes())  # each already quoted: 'sha256-...'
    return ("default-src 'self'; "
            f"script-src 'self' {hashes}; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind_is_local(bind: str) -> bool:
    """Whether a gunicorn bind (``HOST:PORT``, ``[::1]:PORT``, ``unix:PATH``, ``fd://N``) is reachable only locally."""
    if bind.startswith("unix:"):
        return True
    if bind.startswith("fd://"):
        return False  # a socket handed over by someone else: its address is unknown here
    if bind.startswith("["):
        host = bind[1:bind.find("]")]
    elif bind.count(":") == 1:
        host = bind.split(":")[0]
    else:
        host = bind  # a host without a port, or a bare IPv6 address
    return is_loopback(host)


def _gunicorn_cfg():
    """gunicorn's merged configuration when called while gunicorn loads the app; None otherwise.

    gunicorn imports the app from a method of its application object (every configuration source,
    command line, ``GUNICORN_CMD_ARGS`` and config file, already merged in its ``cfg``): found by
    walking up the calling frames.
    """
    base = sys.modules.get("gunicorn.app.base")
    if base is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if isinstance(obj, base.BaseApplication) and getattr(obj, "cfg", None) is not None:
            return obj.cfg
        frame = frame.f_back
    return None


def gunicorn_binds() -> list[str] | None:
    """The addresses gunicorn binds, when called while gunicorn loads the app; None otherwise."""
    cfg = _gunicorn_cfg()
    return None if cfg is None else [str(b) for b in (cfg.bind or [])]


def gunicorn_workers() -> int:
    """How many worker processes gunicorn runs, when called while gunicorn loads the app; 1 otherwise."""
    cfg = _gunicorn_cfg()
    return 1 if cfg is None else int(cfg.workers or 1)


def check_open_bind(settings: Settings) -> None:
    """ValueError if sign-in is off and gunicorn binds any address but loopback (or a unix socket)."""
    if settings.auth:
        return
    binds = gunicorn_binds()
    wide = [b for b in binds or [] if not _bind_is_local(b)]
    if wide:
        raise ValueError(f"refusing to serve on {', '.join(wide)} without sign-in: open mode (RNNVIS_AUTH off) serves "
                         "loopback only (gunicorn -b 127.0.0.1:8050); set RNNVIS_AUTH=on with RNNVIS_SECRET_KEY and "
                         "users from `rnnvis users add` to serve beyond this machine")


class TrustedProxyFix:
    """Werkzeug's ProxyFix (the last ``hops`` ``X-Forwarded-For`` / ``-Proto`` entries), applied only to requests
    whose peer is a proxy on this machine: a unix socket or a loopback address.  A client that reaches gunicorn
    directly over the network keeps its own address, whatever ``X-Forwarded-For`` it sends."""

    def __init__(self, wsgi_app, hops: int):
        from werkzeug.middleware.proxy_fix import ProxyFix
        self.direct = wsgi_app
        self.forwarded = ProxyFix(wsgi_app, x_for=hops, x_proto=hops)

    def __call__(self, environ, start_response):
        peer = str(environ.get("REMOTE_ADDR") or "")
        trusted = not peer or peer.startswith("/") or is_loopback(peer)   # "" or a path: a unix socket
        return (self.forwarded if trusted else self.direct)(environ, start_response)


def install(app: dash.Dash, settings: Settings) -> None:
    """Body caps, security headers and (open mode) the loopback check on the app's Flask server."""
    server = app.server
    if settings.proxy_hops:  # the client's address and scheme as the trusted proxies saw them
        server.wsgi_app = TrustedProxyFix(server.wsgi_app, settings.proxy_hops)
    member_cap = member_max_body()
    server.config["MAX_CONTENT_LENGTH"] = member_cap
    hsts = settings.auth and settings.cookie_secure

    @server.before_request
    def _open_mode_checks():
        if settings.auth:
            return None  # the hosted gate applies the cap of the signed-in role
        sock = flask.request.environ.get("gunicorn.socket")
        if sock is not None:
            try:
                local = sock.getsockname()[0]
            except (OSError, IndexError, TypeError):
                local = ""
            if isinstance(local, str) and local and not is_loopback(local):
                return flask.make_response("open mode (no sign-in) serves loopback only; set RNNVIS_AUTH=on\n", 403)
        return refuse_large_body(member_cap)

    @server.after_request
    def _headers(resp: flask.Response) -> flask.Response:
        h = resp.headers
        h.setdefault("Content-Security-Policy", content_security_policy(app))
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if hsts:
            h.setdefault("Strict-Transport-Security", HSTS)
        return resp
