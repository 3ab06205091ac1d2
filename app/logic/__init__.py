"""Callback logic as plain functions: ``(reader, inputs) -> outputs``.

The page modules in :mod:`app.pages` only declare layouts and wire these
functions to component ids (Dash executes page files itself, under its own
module names, so tests and the bench import these modules instead).
"""
