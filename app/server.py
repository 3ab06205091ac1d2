"""The Dash app: ``create_app(settings)`` and ``serve(store, host, port)``.

Pages live in :mod:`app.pages` (Dash registers them; the nav bar lists
``dash.page_registry`` in ``order``). Per-app objects (settings, the store
reader) sit on ``app.server.config`` under the keys of :mod:`app.context`;
no module here keeps mutable state.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import dash
import flask
from dash import ALL, Input, Output, dcc, html

from analytics.settings import Settings
from app import context, ids, inputs
from app.hosted import auth, security
from app.reader import Reader

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


LOOPBACK = ("127.0.0.1", "localhost", "::1")

#: Toolbar buttons that do nothing useful on our figures (box and lasso select, autoscale, zoom steps): fewer
#: buttons keep the toolbar in the top right corner, clear of titles and legends.
MODEBAR_REMOVE = ["select2d", "lasso2d", "autoScale2d", "zoomIn2d", "zoomOut2d"]

#: (format, [graph ids]) -> [config of each graph]; sets toImageButtonOptions on the live plots too.
EXPORT_JS = """function (fmt, graphIds) {
    fmt = fmt === "svg" ? "svg" : "png";
    return (graphIds || []).map(function (gid) {
        var opts = {format: fmt, scale: 2, filename: "rnnvis-" + gid.name};
        var el = document.getElementById(JSON.stringify({name: gid.name, type: gid.type}));
        var gd = el && (el.classList.contains("js-plotly-plot") ? el : el.querySelector(".js-plotly-plot"));
        if (gd && gd._context) { gd._context.toImageButtonOptions = Object.assign({}, opts); }
        // plotly names the format in the camera's tooltip only for PNG ("Download plot" otherwise), and only when
        // it draws the toolbar: the live buttons get the new name, a redrawn toolbar the locale's
        var tip = fmt === "svg" ? "Download plot as an SVG" : "Download plot as a PNG";
        (gd ? gd.querySelectorAll(".modebar-btn[data-title^='Download plot']") : []).forEach(function (b) {
            b.setAttribute("data-title", tip);
        });
        return {displaylogo: false, modeBarButtonsToRemove: %s, toImageButtonOptions: opts,
                locales: {en: {dictionary: {"Download plot": "Download plot as an SVG"}}}};
    });
}""" % json.dumps(MODEBAR_REMOVE)  # noqa: UP031 - the JS braces would all need doubling in an f-string


def _nav(hosted: bool = False) -> html.Header:
    pages = sorted(dash.page_registry.values(), key=lambda p: (p.get("order") is None, p.get("order") or 0, p["name"]))
    # a page that needs a role (Admin) is not offered to users without it; its callbacks refuse them anyway
    links = [dcc.Link(p["name"], href=p["relative_path"], className="nav-link", id=f"nav-{p['name'].lower()}")
             for p in pages if not (hosted and p.get("role") and not auth.can(p["role"]))]
    return html.Header([
        html.Div([html.Span("RNN", className="brand-a"), html.Span("Vis", className="brand-b")], className="brand"),
        html.Nav(links, className="nav"),
        html.Div([html.Span("export figures as", className="muted small"),
                  dcc.RadioItems(id=ids.EXPORT_FORMAT, options=[{"label": " PNG", "value": "png"},
                                                                {"label": " SVG", "value": "svg"}],
                                 value="png", inline=True, className="export-radio",
                                 persistence=True, persistence_type="local")], className="export"),
        html.Div([html.Span(id=ids.USER_BADGE, className="muted small"),
                  # signing out is a POST with the session's form token (no cross-site sign-out by a link)
                  html.Form(html.Button("Sign out", type="submit", name="csrf", value=auth.form_token(),
                                        className="nav-link", id=ids.SIGN_OUT,
                                        style={"background": "none", "border": 0, "cursor": "pointer",
                                               "font": "inherit"}),
                            method="post", action="/logout", style={"display": "inline"})] if hosted else [],
                 className="user"),
    ], className="topbar", id=ids.NAV)


def create_app(settings: Settings) -> dash.Dash:
    """The dashboard for the store at ``settings.store``."""
    app = dash.Dash(
        __name__, use_pages=True, pages_folder=str(HERE / "pages"), assets_folder=str(HERE / "assets"),
        suppress_callback_exceptions=False, title="RNNVis", update_title=None,
    )
    app.server.config[context.SETTINGS_KEY] = settings
    app.server.config[context.READER_KEY] = Reader(settings.store)
    security.install(app, settings)
    if settings.auth:
        auth.install(app, settings)
    inputs.install(app)  # after the body caps and the gate: every callback request checked against its schema

    def layout() -> html.Div:  # per page load: the sign-out form carries this session's token
        return html.Div([_nav(settings.auth), html.Div(dash.page_container, className="content")], className="app")

    app.layout = layout if settings.auth else layout()
    # suppress_callback_exceptions stays False: on the first request Dash sets app.validation_layout to
    # this layout plus every page's layout() (each returns its full skeleton, whatever the URL holds), so
    # a callback naming an id that no page has fails loudly.

    # Every figure's toolbar exports in the format picked in the top bar (kept in the browser's local storage),
    # on the figures drawn already as on those a page adds later. In the browser: dcc.Graph only reads `config`
    # when its figure changes, so the function also sets the option on the plots already drawn.
    app.clientside_callback(EXPORT_JS, Output({"type": ids.GRAPH_TYPE, "name": ALL}, "config"),
                            Input(ids.EXPORT_FORMAT, "value"), Input({"type": ids.GRAPH_TYPE, "name": ALL}, "id"))

    if settings.auth:
        @app.callback(Output(ids.USER_BADGE, "children"), Input(ids.SIGN_OUT, "id"))
        def _user_badge(_):
            user = auth.current_user()
            return f"{user.name} ({user.role})" if user else ""

    @app.server.route("/models")
    def _models_alias():
        """The Models page is the home page; /models (a natural guess, and the page's name) leads there."""
        query = flask.request.query_string.decode()
        return flask.redirect(app.get_relative_path("/") + (f"?{query}" if query else ""), code=302)

    @app.server.route("/healthz")
    def _healthz():
        """Liveness for load balancers, open to anyone: says whether the store can be read, and nothing else."""
        reader: Reader = app.server.config[context.READER_KEY]
        try:
            reader.model_ids()
        except OSError as e:
            log.warning("health check: the store cannot be read: %s", e)
            return flask.jsonify({"status": "error"}), 503
        return flask.jsonify({"status": "ok"})

    return app


def check_bind(settings: Settings) -> None:
    """Open mode (no sign-in) serves loopback only: ValueError for any other host."""
    if not settings.auth and settings.host not in LOOPBACK:
        raise ValueError(f"refusing to serve on {settings.host}: without sign-in the dashboard binds to 127.0.0.1 "
                         "only; set RNNVIS_AUTH=on (with RNNVIS_SECRET_KEY and users from `rnnvis users add`) to "
                         "serve beyond loopback")


def create_wsgi() -> flask.Flask:
    """The WSGI app for gunicorn, configured from the environment (``gunicorn 'app.server:create_wsgi()'``)."""
    settings = Settings.from_env()
    security.check_open_bind(settings)  # open mode on a non-loopback gunicorn bind: refuse to start
    if not settings.auth:
        log.warning("RNNVIS_AUTH is off: anyone who can reach this server can use it; it is served on loopback "
                    "only (set RNNVIS_AUTH=on to serve beyond this machine)")
    if not settings.broker_url:
        log.warning("no RNNVIS_BROKER_URL: jobs wait in %s/.broker until a `rnnvis worker` for this store runs "
                    "(gunicorn starts none; the Jobs page says so when jobs wait)", settings.store)
    return create_app(settings).server


def serve(store: Path, host: str = "127.0.0.1", port: int = 8050) -> int:
    """Serve the dashboard for ``store`` with waitress until interrupted; returns an exit code."""
    from dataclasses import replace

    from waitress import serve as waitress_serve

    from workers.embedded import start_embedded_worker, stop_embedded_worker

    settings = replace(Settings.from_env(), store=Path(store), host=host, port=port)
    check_bind(settings)
    app = create_app(settings)
    worker = start_embedded_worker(settings)  # None when RNNVIS_BROKER_URL points at a real broker
    print(f"RNNVis dashboard: http://{host}:{port}/"
          + ("  (jobs run on an embedded worker)" if worker is not None else ""), flush=True)
    # SIGTERM (docker stop, kill, timeout) must unwind like Ctrl+C so the worker is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        waitress_serve(app.server, host=host, port=port, threads=8, ident="rnnvis")
    except KeyboardInterrupt:
        pass
    finally:
        stop_embedded_worker(worker)
    return 0
