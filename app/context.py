"""Per-app objects reached from callbacks through Flask's ``current_app``.

``create_app`` puts the settings and the store reader on the Flask server's
config; callbacks look them up here instead of keeping module-level state.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import flask

if TYPE_CHECKING:
    from analytics.settings import Settings

SETTINGS_KEY = "RNNVIS_SETTINGS"
READER_KEY = "RNNVIS_READER"


def settings() -> Settings:
    return flask.current_app.config[SETTINGS_KEY]


def reader():
    return flask.current_app.config[READER_KEY]
