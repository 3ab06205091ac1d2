"""WSGI entry point for production serving: ``gunicorn -w 4 -b 0.0.0.0:8050 app.wsgi:server``.

Configured from ``RNNVIS_*`` environment variables (see ``analytics/settings.py``
and ``docs/deployment.md``); every gunicorn worker builds its own app (no
state is shared between workers but the store and the users file).
"""
from app.server import create_wsgi

server = create_wsgi()
