"""Pure figure builders: DataFrames / arrays in, plotly figure specs (dicts) out, one module per view.

No Dash, no store access, no state: the pages call these with what the
reader returned. Every text that reaches plotly goes through :func:`esc`
(plotly renders a few HTML tags inside labels and drops unknown ones, so
``<unk>`` would vanish and user text could inject markup); ``customdata``
keeps the raw values for callbacks.

- :mod:`.base`: the common look, colours, :func:`esc`, :func:`message_figure`;
- :mod:`.cocluster`: memory chips, word clouds and links (Explore, Compare), laid out by :mod:`.cocluster_layout`;
- :mod:`.glyphs`: sentence glyphs and a classifier's word contributions;
- :mod:`.detail`: box plots of the units' responses to words, a unit's top words;
- :mod:`.charts`: training curves, gradient flow, matched |r| against chance, cluster overlap.
"""
from __future__ import annotations

from .base import (
    CLASS_COLORS,
    FONT,
    NEGATIVE,
    PALETTE,
    POS_COLORS,
    POS_NAMES,
    POSITIVE,
    SCALE,
    TOOLBAR_BAND,
    Figure,
    esc,
    message_figure,
    title,
    to_go,
    top_margin,
)
from .charts import contingency_figure, gradient_flow_figure, job_curve_figure, matched_r_figure, training_curves
from .cocluster import cocluster_figure, makeup_text
from .cocluster_layout import CLOUD_W, FONT_MAX, FONT_MIN, LINK_GAP, PX, CoclusterOptions
from .detail import detail_figure, unit_words_figure
from .glyphs import glyph_figure, sentence_label

__all__ = [
    "esc", "POS_COLORS", "cocluster_figure", "glyph_figure", "detail_figure", "unit_words_figure",
    "training_curves", "gradient_flow_figure", "contingency_figure", "message_figure", "CoclusterOptions",
    "matched_r_figure", "makeup_text", "to_go", "Figure", "POS_NAMES", "POSITIVE", "NEGATIVE", "CLASS_COLORS",
    "SCALE", "FONT", "PALETTE", "PX", "FONT_MIN", "FONT_MAX", "LINK_GAP", "CLOUD_W", "title", "top_margin",
    "TOOLBAR_BAND", "sentence_label", "job_curve_figure",
]
