"""Pieces every page's control panel and figures share: a labelled control, the model picker's options, and
the graphs' toolbar configuration."""
from __future__ import annotations

from typing import Any

from dash import html

#: Every graph's toolbar: no Plotly logo; the camera saves a PNG at twice the size (the nav bar switches to SVG).
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def control(text: str | list, child: Any, help_text: str | None = None, narrow: bool = False) -> html.Div:
    """A control with its label above it (``text``: a string or components; ``help_text``: the label's tooltip)."""
    return html.Div([html.Label(text, title=help_text or ""), child],
                    className="control control-narrow" if narrow else "control")


def model_options(options: list[dict], *picked: str | None) -> list[dict]:
    """The model picker's options, plus each picked model that is not among them (from a stale link), marked
    "(not found)" so that the page can say so instead of silently showing another model."""
    known = {o["value"] for o in options}
    extra = []
    for m in picked:
        if m and m not in known:
            extra.append({"label": f"{m} (not found)", "value": m})
            known.add(m)
    return options + extra
