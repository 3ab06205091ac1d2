"""The dashboard served over real HTTP for a test: waitress on a free loopback port, in a daemon thread."""
from __future__ import annotations

import threading


def serve_in_thread(app):
    """Serve a Dash app with waitress on a free loopback port in a daemon thread (``.effective_port``, ``.close()``)."""
    from waitress.server import create_server
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=srv.run, daemon=True).start()
    return srv
